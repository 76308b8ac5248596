"""`powdersym predict / evaluate / refine` from the command line: the shipped models load without anything
downloaded, results are well-formed and consistent, and bad input gets one line and exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from powdersym.cli import app
from powdersym.predict import Predictor, constrain_lattice
from powdersym.symmetry import BRAVAIS_LABELS, CRYSTAL_SYSTEMS, label_tables

runner = CliRunner()


def test_shipped_models_load_and_describe_themselves():
    for instrument in ("xray-cuka", "neutron-cw"):
        predictor = Predictor.for_instrument(instrument)
        meta = predictor.saved.meta
        assert meta["label_set"] == "sg" and len(meta["classes"]) == 230
        assert predictor.instrument.name == instrument
        assert meta["temperature"] > 0 and 0 < meta["refusal_threshold"] < 1
        assert "calibration" in meta and "training" in meta


def test_derived_probabilities_are_sums_over_member_groups():
    predictor = Predictor.for_instrument("neutron-cw", top=230)
    rng = np.random.default_rng(0)
    x = rng.random((3, len(predictor.instrument.grid()))).astype(np.float32)
    results = predictor.predict_arrays(x)
    cs_of_sg = label_tables("cpu")["crystal_system"].numpy()
    br_of_sg = label_tables("cpu")["bravais"].numpy()
    for r in results:
        probs = np.zeros(231)
        for number, _, p in r.space_groups:
            probs[number] = p
        assert probs.sum() == pytest.approx(1.0, abs=1e-4)
        system = CRYSTAL_SYSTEMS.index(r.crystal_system[0])
        assert r.crystal_system[1] == pytest.approx(probs[cs_of_sg == system].sum(), abs=1e-5)
        bravais = BRAVAIS_LABELS.index(r.bravais[0])
        assert r.bravais[1] == pytest.approx(probs[br_of_sg == bravais].sum(), abs=1e-5)
        assert r.uncertain == (r.certainty < r.threshold)


def test_lattice_constrained_by_crystal_system():
    raw = np.array([4.0, 4.2, 6.0, 89.0, 95.0, 118.0])
    assert constrain_lattice(raw, "cubic").tolist() == pytest.approx([14.2 / 3] * 3 + [90, 90, 90])
    assert constrain_lattice(raw, "hexagonal").tolist() == pytest.approx([4.1, 4.1, 6.0, 90, 90, 120])
    assert constrain_lattice(raw, "monoclinic").tolist() == pytest.approx([4.0, 4.2, 6.0, 90, 95, 90])


def test_predict_a_measured_neutron_file(shared_data):
    folder = shared_data / "measured" / "gsas2_tutorials" / "files" / "CWNeutron" / "data"
    result = runner.invoke(app, ["predict", str(folder / "garnet.raw"), "--instrument-file", str(folder / "inst_d1a.prm"),
                                 "-i", "neutron-cw", "--json", "--top", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)
    probabilities = [g["probability"] for g in entry["space_groups"]]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert entry["crystal_system"]["label"] in CRYSTAL_SYSTEMS
    assert len(entry["lattice"]) == 6 and 0 < entry["coverage"] <= 1


def test_predict_says_when_lines_are_orders_of_one_spacing(tmp_path):
    # 001-007 of a 14.2 Å layer silicate lying flat (no other line): no cell, and the file's result says why
    x = np.arange(5.0, 90.0, 0.01)
    centres = 2 * np.degrees(np.arcsin(1.5406 / (2 * 14.2 / np.arange(1, 8))))
    y = 100 + 1e4 * np.exp(-4 * np.log(2) * ((x - centres[:, None]) / 0.08) ** 2).sum(0)
    np.savetxt(tmp_path / "clay.xy", np.c_[x, y])
    text = runner.invoke(app, ["predict", str(tmp_path / "clay.xy"), "--wavelength", "1.5406"])
    assert text.exit_code == 0, text.output
    assert "orders of one spacing, d = 14.2" in text.output and "peak positions index" not in text.output
    result = runner.invoke(app, ["predict", str(tmp_path / "clay.xy"), "--wavelength", "1.5406", "--json"])
    (entry,) = json.loads(result.output)
    assert entry["indexed"] is None and abs(entry["one_spacing"] - 14.2) < 0.01


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "missing.xye"], "no such file"),
        (["predict", "{garbage}"], "garbage"),
        (["predict", "{good}", "-i", "neutron-tof"], "no shipped model"),
        (["predict", "{good}", "--model", "{garbage}"], "no such model"),
        (["refine", "{good}", "--sg", "225", "--cell", "4,4,4"], "six numbers"),
        (["refine", "{good}", "--sg", "225", "--wavelength", "1.5406"], "no cell (cubic to triclinic) indexes these peaks"),
        (["evaluate", "xray-cuka", "--data", "nonsense"], "unknown evaluation set"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, message):
    garbage = tmp_path / "garbage.xye"
    garbage.write_bytes(b"\x00\x01binary\xff" * 50)
    good = tmp_path / "good.xy"
    two_theta = np.arange(10, 80, 0.02)
    good.write_text("\n".join(f"{t:.3f} {1 + np.exp(-((t - 30) / 0.1) ** 2):.5f}" for t in two_theta))
    args = [a.format(garbage=garbage, good=good) for a in args]
    if args[0] == "predict" and "--model" not in args and "-i" not in args:
        args += ["--wavelength", "1.5406"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("powdersym: error:"), result.output
    assert message in lines[0] or (message == "garbage" and "garbage.xye" in lines[0])


def test_evaluate_a_pattern_file_writes_the_report(tmp_path):
    from powdersym.data import build_dataset

    data = build_dataset(tmp_path / "test.h5", "synthetic", "neutron-cw", 32, seed=5)
    result = runner.invoke(app, ["evaluate", "neutron-cw", "--data", str(data), "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["n_samples"] == 32 and report["label_set"] == "space_group"
    assert (tmp_path / "report" / "report.md").stat().st_size > 0
    assert len(list((tmp_path / "report").glob("*.png"))) >= 3


def test_evaluate_a_folder_of_measured_files_and_several_models(tmp_path):
    """Two models (the shipped X-ray one twice, saved with different recorded label fractions) on a folder of
    measured-format files: a report per model and the Table 4 plot."""
    import shutil

    from powdersym.predict import shipped_model

    folder = tmp_path / "measured"
    folder.mkdir()
    two_theta = np.arange(5, 90, 0.02)
    lines = ["file,sg_number,formula,wavelength"]
    for i, (peak, group) in enumerate([(30.0, 225), (40.0, 62)]):
        y = 10 + 1000 * np.exp(-(((two_theta - peak) / 0.08) ** 2))
        (folder / f"p{i}.xy").write_text("\n".join(f"{t:.3f} {v:.3f}" for t, v in zip(two_theta, y)))
        lines.append(f"p{i}.xy,{group},NaCl,1.5406")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    models = []
    for fraction in (0.1, 0.5):
        target = tmp_path / f"m{fraction}" / "model.safetensors"
        target.parent.mkdir()
        shutil.copy(shipped_model("xray-cuka"), target)
        meta = json.loads(shipped_model("xray-cuka").with_suffix(".json").read_text())
        meta["training"]["config"] = {"labelled_fraction": fraction, "sgan": fraction == 0.1, "data": "synthetic"}
        target.with_suffix(".json").write_text(json.dumps(meta))
        models.append(str(target))
    result = runner.invoke(app, ["evaluate", *models, "--data", str(folder), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    reports = sorted((tmp_path / "out").glob("*/report.json"))
    assert len(reports) == 2
    assert json.loads(reports[0].read_text())["n_samples"] == 2
    assert (tmp_path / "out" / "label_fraction.png").stat().st_size > 0


def test_calibrate_stores_temperature_and_threshold(tmp_path):
    import shutil

    from powdersym.predict import shipped_model

    target = tmp_path / "model.safetensors"
    shutil.copy(shipped_model("neutron-cw"), target)
    meta = json.loads(shipped_model("neutron-cw").with_suffix(".json").read_text())
    for key in ("temperature", "refusal_threshold", "calibration"):
        meta.pop(key, None)
    target.with_suffix(".json").write_text(json.dumps(meta))
    result = runner.invoke(app, ["calibrate", str(target), "--n", "64", "--no-index"])  # indexing: the next test
    assert result.exit_code == 0, result.output
    stored = json.loads(target.with_suffix(".json").read_text())
    assert stored["temperature"] > 0 and 0 < stored["refusal_threshold"] < 1
    assert stored["calibration"]["refusal"]["coverage"] >= 0.5
    # the known-crystals prior has its own threshold, chosen on the same patterns re-weighted, which predict uses
    assert 0 < stored["refusal_threshold_known"] < 1 and stored["calibration"]["refusal_known"]["coverage"] >= 0.5
    assert Predictor.load(target).threshold == stored["refusal_threshold_known"]
    assert Predictor.load(target, prior="trained").threshold == stored["refusal_threshold"]


def test_calibration_threshold_is_chosen_on_what_predict_reports(tmp_path, monkeypatch):
    """With indexing (the default) the threshold is chosen on the probabilities restricted to each validation
    pattern's cell, as `predict` reports them. Every pattern given a triclinic cell leaves P1 and P-1, one of which
    then has at least half the probability: the threshold that keeps half the patterns is >= 0.5, far above the
    network's own (about 0.1 for the shipped neutron-cw model). The temperature does not depend on it."""
    import shutil

    import powdersym.evaluate.calibrate_model as calibrate_model
    from powdersym.predict import shipped_model
    from powdersym.refine import IndexedCell

    target = tmp_path / "model.safetensors"
    shutil.copy(shipped_model("neutron-cw"), target)
    shutil.copy(shipped_model("neutron-cw").with_suffix(".json"), target.with_suffix(".json"))
    triclinic = IndexedCell("triclinic", 5.0, 7.0, 0.0, 30.0, 20, 20, 60, b=6.0, beta=100.0, alpha=95.0, gamma=80.0)
    monkeypatch.setattr(calibrate_model, "indexed_cells", lambda predictor, patterns, progress=False, jobs=1: [triclinic] * len(patterns))
    indexed = calibrate_model.calibrate_saved_model(target, n=32)
    plain = calibrate_model.calibrate_saved_model(target, n=32, index=False)
    assert indexed["calibration"]["indexed"].startswith("32 of 32") and plain["calibration"]["indexed"] == "not indexed"
    assert indexed["refusal_threshold"] >= 0.5 and indexed["refusal_threshold_known"] >= 0.5
    assert plain["refusal_threshold"] < 0.5
    assert indexed["temperature"] == pytest.approx(plain["temperature"])
    assert json.loads(target.with_suffix(".json").read_text())["refusal_threshold"] == plain["refusal_threshold"]


def test_known_prior_is_bayes_rule_from_the_training_balance():
    """A network output that carries no information (logits = log of the training class balance) must give the
    prior back: the frequencies of known crystals with prior 'known', the training balance with 'trained'."""
    from powdersym.structures.random import space_group_distribution
    from powdersym.structures.statistics import known_space_group_frequencies

    predictor = Predictor.for_instrument("xray-cuka")
    balance = predictor.saved.meta["training"]["balanced_over"]
    trained = space_group_distribution(balance)
    logits = np.log(trained)[None] * predictor.saved.temperature  # [1, 230]
    np.testing.assert_allclose(predictor.probabilities(logits)[0], known_space_group_frequencies(), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(Predictor.for_instrument("xray-cuka", prior="trained").probabilities(logits)[0], trained, rtol=1e-4)
    result = runner.invoke(app, ["predict", "missing.xy", "--prior", "flat"])
    assert result.exit_code == 2 and "unknown prior" in result.output and "Traceback" not in result.output


def test_refine_starts_from_the_indexed_cell(shared_data, exp_reference):
    """Without --cell, refine starts from the cell the peaks index (fluorapatite, lab Cu K-alpha1/2) and reaches
    the cell GSAS refined from the same data; a group the indexed lattice cannot have is refused."""
    folder = shared_data / "measured" / "gsas2_tutorials" / "files" / "LabData" / "data"
    base = ["refine", str(folder / "FAP.XRA"), "--instrument-file", str(folder / "INST_XRY.PRM")]
    result = runner.invoke(app, base + ["--sg", "176", "--json"])
    assert result.exit_code == 0, result.output
    refined = json.loads(result.output[result.output.index("{"):])["cell"]
    reference = exp_reference(folder / "FAP.EXP")
    assert abs(refined["a"] / reference[0] - 1) < 1e-3 and abs(refined["c"] / reference[2] - 1) < 1e-3
    wrong = runner.invoke(app, base + ["--sg", "62"])
    assert wrong.exit_code == 2 and "index a hexagonal cell" in wrong.output


def test_refine_puts_an_orthorhombic_cell_in_the_groups_setting(shared_data):
    """PbSO4 indexes with a <= b <= c (5.40, 6.96, 8.48 Å); Pnma's standard setting has a the longest axis, and only
    that order lets its reflection conditions explain the lines: refine starts from it and reaches the published
    cell (a 8.482, b 5.398, c 6.959 Å, Miyake et al., Am. Mineral. 63, 506, 1978) within 0.1 %."""
    folder = shared_data / "measured" / "gsas2_tutorials" / "files" / "CWCombined" / "data"
    result = runner.invoke(app, ["refine", str(folder / "PBSO4.XRA"), "--instrument-file", str(folder / "INST_XRY.PRM"),
                                 "--sg", "62", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    refined = json.loads(result.output[result.output.index("{"):])["cell"]
    assert np.allclose([refined[k] for k in "abc"], [8.482, 5.398, 6.959], rtol=1e-3), refined


def test_predict_indexes_many_files_in_worker_processes(tmp_path, shared_data, monkeypatch, recorded_pools):
    """`predict --jobs 2` indexes in a pool of two spawned processes (here from one file a worker) and prints the
    same JSON, in the order of the files, as `--jobs 1`, which starts no pool (three RRUFF patterns, at least two of
    which index, written as 2theta columns)."""
    import powdersym.predict as predict_module
    from powdersym.evaluate.sets import load_evaluation_set

    monkeypatch.setenv("POWDERSYM_SHARED_DATA", str(shared_data))
    data = load_evaluation_set("rruff")
    files = []
    for n in (392, 733, 1):
        pattern = data.patterns[data.names.index(f"rruff:{n}.npy")]
        files.append(tmp_path / f"rruff_{n}.xy")
        np.savetxt(files[-1], np.column_stack([pattern.x, pattern.y]))
    monkeypatch.setattr(predict_module, "PATTERNS_PER_JOB", 1)
    args = ["predict", *map(str, files), "--wavelength", "1.5406", "--json"]
    alone, pooled = (runner.invoke(app, args + ["--jobs", jobs]) for jobs in ("1", "2"))
    assert alone.exit_code == 0 and pooled.exit_code == 0, alone.output + pooled.output
    assert recorded_pools == [2]
    first, second = json.loads(alone.output), json.loads(pooled.output)
    assert [entry["source"] for entry in second] == [str(f) for f in files]
    assert second == first and sum(entry["indexed"] is not None for entry in first) >= 2
