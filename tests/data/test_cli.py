"""`powdersym dataset import | build | info`: results and summaries; bad input gives one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from powdersym.cli import app
from powdersym.data import read_labels

runner = CliRunner()


def test_import_reports_counts(structure_folder: Path, tmp_path: Path):
    out = tmp_path / "structures.h5"
    result = runner.invoke(app, ["dataset", "import", str(structure_folder), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "15 structures kept, 1 unreadable files skipped, 2 duplicates removed" in result.output
    assert "warning: skipped" in result.output and "garbage.cif" in result.output
    info = runner.invoke(app, ["dataset", "info", str(out)])
    assert info.exit_code == 0 and "15 structures in 10 space groups" in info.output
    again = runner.invoke(app, ["dataset", "import", str(structure_folder), "-o", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_build_from_a_folder_and_info(structure_folder: Path, tmp_path: Path):
    out = tmp_path / "real.h5"
    args = ["dataset", "build", "--source", str(structure_folder), "-n", "20", "--augment", "none", "--block-size", "8",
            "--device", "cpu", "-o", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    labels = read_labels(out)
    assert len(labels["space_group"]) == 20  # 15 structures, then the first 5 again
    assert list(labels["source"][15:]) == list(labels["source"][:5])
    info = runner.invoke(app, ["dataset", "info", str(out), "--label", "space_group"])
    assert info.exit_code == 0, info.output
    assert "20 patterns x 3041 points" in info.output and "patterns per space_group" in info.output
    assert "225 F m -3 m" in info.output
    as_json = json.loads(runner.invoke(app, ["dataset", "info", str(out), "--json"]).output)
    assert as_json["counts"]["crystal_system"]["6 cubic"] == 8 + 2  # AgI, AuCu, BaTiO3, CaF2, CsCl come again
    checked = runner.invoke(app, ["dataset", "info", str(out), "--check"])
    assert checked.exit_code == 0 and "checksums verified" in checked.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "{tmp}/bad.h5"], "not a readable HDF5 file"),
        (["info", "{tmp}/none.h5"], "no such file"),
        (["info", "{tmp}/bad.h5", "--label", "colour"], "unknown label"),
        (["build", "-o", "{tmp}/x.h5", "--source", "{tmp}/nowhere"], "no such structure folder"),
        (["build", "-o", "{tmp}/x.h5", "--source", "{tmp}/bad.h5"], "not a readable HDF5 file"),
        (["build", "-o", "{tmp}/x.h5", "--source", "{folder}", "--instrument", "nope"], "unknown instrument preset"),
        (["build", "-o", "{tmp}/x.h5", "--source", "{folder}", "--augment", "lots"], "unknown augmentation"),
        (["build", "-o", "{tmp}/x.h5", "--source", "{folder}", "--augment-range", "size=1:2"], "unknown augmentation range"),
        (["build", "-o", "{tmp}/x.h5", "--source", "{folder}", "--augment-range", "microstrain"], "--augment-range"),
        (["build", "-o", "{tmp}/x.h5", "--source", "{folder}", "--augment", "none", "--augment-range", "microstrain=off"],
         "augmentation is off"),
        (["build", "-o", "{tmp}/x.h5", "--source", "{folder}", "--shard", "2/2"], "--shard"),
        (["build", "-o", "{tmp}/bad.h5", "--source", "{folder}"], "exists"),
        (["import", "{tmp}/nowhere", "-o", "{tmp}/c.h5"], "not a folder"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(structure_folder: Path, tmp_path: Path, args, message):
    (tmp_path / "bad.h5").write_bytes(b"garbage" * 50)
    args = [a.format(tmp=tmp_path, folder=structure_folder) for a in args]
    result = runner.invoke(app, ["dataset", *args, *(["--device", "cpu"] if args[0] == "build" else [])])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("powdersym: error:")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output
