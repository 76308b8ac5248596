"""`powdersym simulate`: writes a three-column pattern (and a plot); bad input gives one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from powdersym.cli import app

# rock salt, a = 5.64 Å, Fm-3m, Na at 0 0 0 and Cl at 1/2 1/2 1/2
NACL = (Path(__file__).resolve().parents[1] / "data" / "rocksalt.cif").read_text()

runner = CliRunner()


@pytest.fixture
def nacl(tmp_path: Path) -> Path:
    path = tmp_path / "nacl.cif"
    path.write_text(NACL)
    return path


def test_simulate_writes_pattern_and_plot(nacl: Path, tmp_path: Path):
    out, png = tmp_path / "nacl.xye", tmp_path / "nacl.png"
    result = runner.invoke(app, ["simulate", str(nacl), "--instrument", "neutron-cw", "-o", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    data = np.loadtxt(out)
    assert data.shape == (3041, 3)
    assert data[:, 1].max() == pytest.approx(1.0) and (data[:, 2] > 0).all()
    # strongest NaCl neutron peak is 200 (Na and Cl both scatter positively): Bragg's law by hand
    expected = 2 * np.degrees(np.arcsin(1.5403 / (2 * 5.64 / 2)))
    assert data[np.argmax(data[:, 1]), 0] == pytest.approx(expected, abs=0.05)
    assert png.stat().st_size > 10_000


def test_wavelength_override_moves_peaks(nacl: Path, tmp_path: Path):
    out = tmp_path / "p.xye"
    result = runner.invoke(app, ["simulate", str(nacl), "-i", "neutron-cw", "-w", "2.4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = np.loadtxt(out)
    expected = 2 * np.degrees(np.arcsin(2.4 / 5.64))
    assert data[np.argmax(data[:, 1]), 0] == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize(
    "content, args, message",
    [
        (None, [], "cannot read file"),
        ("garbage without a block", [], "malformed CIF"),
        (NACL.replace("_cell_length_a 5.64", "_cell_length_a 0"), [], "cell"),
        (NACL.replace("Cl1 Cl", "Xx1 Xx"), [], "unknown element"),
        (NACL, ["--instrument", "neutron-xyz"], "unknown instrument preset"),
        (NACL, ["--wavelength", "-1"], "wavelength"),
        (NACL, ["--set", "nonsense=3"], "--set"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path: Path, content, args, message):
    structure = tmp_path / "in.cif"
    if content is not None:
        structure.write_text(content)
    out = tmp_path / "out.xye"
    result = runner.invoke(app, ["simulate", str(structure), "-o", str(out), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.xye*"))


def test_unwritable_output_is_refused_cleanly(nacl: Path, tmp_path: Path):
    result = runner.invoke(app, ["simulate", str(nacl), "-o", str(tmp_path / "no" / "such" / "dir.xye")])
    assert result.exit_code == 2 and "cannot write" in result.output
