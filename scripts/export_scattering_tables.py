"""Export the scattering tables the simulator ships (run once; the output is committed package data).

X-ray: International Tables Vol. C (1992) Table 6.1.1.4 four-Gaussian coefficients, as distributed by gemmi
(`Element.it92`): f0(s) = sum_i a_i exp(-b_i s^2) + c with s = sin(theta)/lambda in 1/Å.
Neutron: bound coherent scattering lengths b_c (fm) as tabulated by `periodictable` (Sears 1992, Neutron News 3,
26, updated from Rauch & Waschkowski 2003 and later evaluations; e.g. He 3.10 fm where Sears has 3.26); real
part, the small imaginary part of strong absorbers is ignored. Elements without a value
(Po, At, Rn, Fr, Ac, Bk, Cf) are stored as null and refused at simulation time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gemmi
import periodictable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from powdersym.structures.species import DEUTERIUM, SPECIES  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "powdersym" / "simulate" / "data" / "scattering_factors.json"


def main() -> None:
    xray, neutron = [], []
    for index, symbol in enumerate(SPECIES):
        if index == 0:
            xray.append([0.0] * 9)
            neutron.append(0.0)
            continue
        z = 1 if index == DEUTERIUM else index
        xray.append([round(float(v), 6) for v in gemmi.Element(z).it92.get_coefs()])
        element = periodictable.D if index == DEUTERIUM else periodictable.elements[z]
        b_c = element.neutron.b_c
        neutron.append(None if b_c is None else float(b_c.real if isinstance(b_c, complex) else b_c))
    table = {
        "species": list(SPECIES),
        "xray_it92": xray,
        "xray_it92_source": f"International Tables Vol. C Table 6.1.1.4 (a1..a4, b1..b4, c), via gemmi {gemmi.__version__}",
        "neutron_b_c_fm": neutron,
        "neutron_source": f"bound coherent scattering lengths (fm), Sears (1992) as updated in periodictable {periodictable.__version__}",
    }
    OUT.write_text(json.dumps(table, indent=0))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
