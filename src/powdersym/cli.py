"""The `powdersym` command. Subcommands grow with the pipeline: simulate (now), dataset, train, evaluate, predict."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Crystal symmetry from powder diffraction patterns (neutron CW, neutron time-of-flight, X-ray).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Crystal symmetry from powder diffraction patterns (neutron CW, neutron time-of-flight, X-ray)."""


def fail(message: str) -> None:
    """One-line error on stderr, exit code 2."""
    typer.echo(f"powdersym: error: {message}", err=True)
    raise typer.Exit(2)


def _parse_overrides(pairs: list[str]) -> dict[str, object]:
    from powdersym.simulate.instruments import Instrument

    types = {f.name: f.type for f in dataclasses.fields(Instrument)}
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            fail(f"--set expects NAME=VALUE with NAME an instrument parameter, got {pair!r}")
        try:
            out[key] = tuple(float(v) for v in value.split(",")) if key.startswith("wavelength") else float(value)
        except ValueError:
            fail(f"--set {key}: {value!r} is not a number")
    return out


@app.command()
def simulate(
    structure: Path = typer.Argument(..., help="Crystal structure: CIF, or VASP POSCAR/CONTCAR."),
    instrument: str = typer.Option("neutron-cw", "--instrument", "-i", help="Instrument preset: neutron-cw, xray-cuka, neutron-tof."),
    output: Path = typer.Option(..., "--output", "-o", help="Pattern file to write: columns x (2theta deg or ToF µs), intensity (max 1), sigma."),
    wavelength: Optional[float] = typer.Option(None, "--wavelength", "-w", help="Wavelength in Å (constant-wavelength presets; replaces a K-alpha doublet by one line)."),
    zero: Optional[float] = typer.Option(None, "--zero", help="Zero shift: 2theta degrees (CW) or µs (ToF)."),
    set_: list[str] = typer.Option([], "--set", help="Any instrument parameter, e.g. --set U=0.1 --set difc=22600 (repeatable)."),
    counts: float = typer.Option(1e4, "--counts", help="Counts at the strongest point, for the Poisson sigma column."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write a PNG of the pattern with hkl tick marks."),
) -> None:
    """Simulate the powder pattern of a crystal structure on an instrument's grid."""
    import numpy as np

    from powdersym.simulate import MissingScatteringDataError, UnknownInstrumentError, peak_list, preset
    from powdersym.simulate import simulate as simulate_patterns
    from powdersym.structures import StructureError, UnknownElementError, read_structure

    overrides = _parse_overrides(set_)
    if wavelength is not None:
        if wavelength <= 0:
            fail(f"--wavelength must be positive, got {wavelength}")
        overrides.update(wavelengths=(wavelength,), wavelength_weights=(1.0,))
    if zero is not None:
        overrides["zero"] = zero
    try:
        inst = preset(instrument, **overrides)
        crystal = read_structure(structure)
        y = simulate_patterns(crystal, inst, dtype=__import__("torch").float64)[0].numpy()
        peaks = peak_list(crystal, inst)
    except (StructureError, UnknownElementError, UnknownInstrumentError, MissingScatteringDataError, ValueError, OSError) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    x = inst.grid()
    sigma = np.sqrt(np.clip(y, 0, None) * counts + 1.0) / counts
    header = (
        f"powdersym simulate {structure.name}: {crystal.formula()}, cell {' '.join(f'{v:.5g}' for v in crystal.lattice)}\n"
        f"instrument {inst.name} ({inst.radiation}, {inst.geometry}); x = {inst.x_label}; intensity max-normalised;"
        f" sigma Poisson for {counts:g} counts at the maximum\n"
        "x intensity sigma"
    )
    from powdersym.io import write_xye

    try:
        write_xye(output, x, y, sigma, header)
        if plot is not None:
            from powdersym.simulate.plot import plot_pattern

            plot_pattern(plot, x, y, peaks, inst, title=f"{crystal.formula()} - {inst.name}")
    except OSError as err:
        fail(f"cannot write: {err}")
    typer.echo(f"wrote {output} ({len(x)} points, {len(peaks.position)} reflections in range)")


if __name__ == "__main__":
    app()
