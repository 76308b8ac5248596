"""Training on CPU: a few steps on tiny data. Loss falls, shapes hold, a run resumed from its checkpoint ends in
the same state as one that was never interrupted, and the exported model predicts what the trained one did."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from powdersym.data import PatternDataset, build_dataset
from powdersym.models.saved import load_model
from powdersym.simulate import preset
from powdersym.train import TrainConfig, class_target, n_classes, train
from powdersym.train.data import BatchIndexSampler

# a coarse grid (381 points) keeps the networks fast on CPU
COARSE = preset("neutron-cw", x_step=0.4)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> str:
    """32 clean synthetic patterns, crystal systems balanced."""
    path = tmp_path_factory.mktemp("train") / "tiny.h5"
    return str(build_dataset(path, "synthetic", COARSE, 32, label_set="crystal_system", seed=3))


def run_config(tmp_path, data: str, **changes) -> TrainConfig:
    settings = dict(
        model="resnet1d", labels="cs", data=data, out=str(tmp_path / "run"), max_steps=60, batch_size=16, lr=3e-3,
        dropout=0.0, validate_every=10, checkpoint_every=10, num_workers=0, progress=False, patience=None,
        validation_fraction=0.1, test_fraction=0.1, log_every=1,
    )  # fmt: skip
    settings.update(changes)
    return TrainConfig(**settings)


def test_label_sets_map_to_class_indices():
    labels = {"space_group": torch.tensor([1, 230, 14]), "sg144": torch.tensor([0, 143, -1]), "bravais": torch.tensor([3, 0, 13])}
    assert class_target(labels, "sg").tolist() == [0, 229, 13]
    assert class_target(labels, "sg144").tolist() == [0, 143, -1]
    assert class_target(labels, "bravais").tolist() == [3, 0, 13]
    assert (n_classes("sg"), n_classes("sg144"), n_classes("bravais"), n_classes("cs"), n_classes("eg")) == (230, 144, 14, 7, 99)
    with pytest.raises(ValueError, match="unknown label set"):
        TrainConfig(labels="planets")


def test_balanced_batches_draw_every_class_equally():
    classes = np.array([0] * 900 + [1] * 90 + [2] * 10)
    sampler = iter(BatchIndexSampler(np.arange(1000), 500, classes, seed=1))
    drawn = np.concatenate([classes[next(sampler)] for _ in range(20)])
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.allclose(shares, 1 / 3, atol=0.03)
    plain = iter(BatchIndexSampler(np.arange(1000), 500, None, seed=1))
    assert np.mean(classes[next(plain)] == 0) > 0.8


def test_supervised_training_learns_and_exports(tmp_path, tiny_dataset):
    config = run_config(tmp_path, tiny_dataset, lattice_weight=0.5)
    result = train(config)
    assert result.steps == 60
    log = np.genfromtxt(tmp_path / "run" / "logs" / "metrics.csv", delimiter=",", names=True)
    ce = log["train_ce"][~np.isnan(log["train_ce"])]  # the class part; starts near ln 7 = 1.95
    assert ce[-5:].mean() < 0.75 * ce[:5].mean()
    saved = load_model(result.model_path)
    assert saved.label_set == "cs" and len(saved.meta["classes"]) == 7
    data = PatternDataset(tiny_dataset)
    x, _ = data.read(np.arange(8))
    logits, lattice = saved.net(x)
    assert logits.shape == (8, 7) and lattice.shape == (8, 6)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(state["net.model.classifier.weight"], saved.net.model.classifier.weight)


def test_resumed_run_matches_uninterrupted_run(tmp_path, tiny_dataset):
    whole = train(run_config(tmp_path / "a", tiny_dataset, max_steps=8, checkpoint_every=4, validate_every=4))
    train(run_config(tmp_path / "b", tiny_dataset, max_steps=4, checkpoint_every=4, validate_every=4))
    resumed = train(run_config(tmp_path / "b", tiny_dataset, max_steps=8, checkpoint_every=4, validate_every=4), resume=True)
    assert resumed.steps == whole.steps == 8
    a, b = load_model(whole.model_path).net.state_dict(), load_model(resumed.model_path).net.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # the second half changed the weights, so equality above is not trivially true
    half = load_model(train(run_config(tmp_path / "c", tiny_dataset, max_steps=4, checkpoint_every=4, validate_every=4)).model_path)
    assert not all(torch.allclose(a[k], half.net.state_dict()[k], atol=1e-6) for k in a)


def test_sgan_trains_on_labelled_and_unlabelled_rows(tmp_path, tiny_dataset, monkeypatch):
    from powdersym.train.module import SGAN

    batches = []
    step = SGAN.training_step
    monkeypatch.setattr(SGAN, "training_step", lambda self, batch, i: batches.append(i) or step(self, batch, i))
    config = run_config(tmp_path, tiny_dataset, sgan=True, labelled_fraction=0.5, max_steps=6, validate_every=3,
                        discriminator_lr=1e-3, generator_lr=1e-3)  # fmt: skip
    result = train(config)
    # steps count batches, as for supervised runs (Lightning's global step counts both optimisers: 12)
    assert result.steps == 6 and len(batches) == 6
    saved = load_model(result.model_path)
    assert saved.net(torch.rand(2, COARSE.grid().size)).shape == (2, 7)
    assert "val_acc" in result.metrics


def test_resumed_sgan_run_matches_uninterrupted_run(tmp_path, tiny_dataset):
    """The resumed SGAN continues with the batches and noise it would have drawn (the batch sampler restarts at the
    batch reached, not at Lightning's count of optimiser steps)."""
    common = dict(sgan=True, labelled_fraction=0.5, checkpoint_every=3, validate_every=3, discriminator_lr=1e-3,
                  generator_lr=1e-3)  # fmt: skip
    whole = train(run_config(tmp_path / "a", tiny_dataset, max_steps=6, **common))
    train(run_config(tmp_path / "b", tiny_dataset, max_steps=3, **common))
    resumed = train(run_config(tmp_path / "b", tiny_dataset, max_steps=6, **common), resume=True)
    assert resumed.steps == whole.steps == 6
    a, b = load_model(whole.model_path).net.state_dict(), load_model(resumed.model_path).net.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_sgan_with_feature_matching_moves_the_generator(tmp_path, tiny_dataset):
    config = run_config(tmp_path, tiny_dataset, sgan=True, labelled_fraction=0.5, max_steps=4, validate_every=2,
                        discriminator_lr=1e-3, generator_lr=1e-3, generator_loss="feature_matching")  # fmt: skip
    train(config)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    from powdersym.train.module import SGAN

    fresh = SGAN(config.as_dict(), 7, COARSE.grid().size)
    moved = [k for k, v in fresh.state_dict().items() if k.startswith("net.generator") and v.is_floating_point()
             and not torch.equal(v, state[k])]  # fmt: skip
    assert moved, "the generator was not updated"
    with pytest.raises(ValueError, match="generator loss"):
        TrainConfig(generator_loss="wasserstein")


def test_sgan_discriminator_sees_real_and_generated_patterns_in_one_batch(tmp_path, tiny_dataset, monkeypatch):
    """With BatchNorm, separate real and generated batches are told apart by their batch statistics alone (the SGAN
    then stayed at chance, docs/results.md); the discriminator must get them together."""
    from powdersym.models.resnet1d import ResNet1d

    sizes: list[int] = []
    forward = ResNet1d.forward
    monkeypatch.setattr(ResNet1d, "forward", lambda self, x: sizes.append(len(x)) or forward(self, x))
    config = run_config(tmp_path, tiny_dataset, sgan=True, labelled_fraction=0.5, max_steps=2, validate_every=2,
                        batch_size=8, discriminator_lr=1e-3, generator_lr=1e-3, model_kwargs={"norm": "batch"})  # fmt: skip
    train(config)
    assert 24 in sizes and 16 in sizes, sizes  # unlabelled + generated + labelled; unlabelled + generated
    assert 8 not in sizes, sizes  # never a batch of one kind alone


def test_synthetic_stream_training_runs(tmp_path):
    config = run_config(tmp_path, "synthetic", instrument="neutron-cw", max_steps=3, batch_size=4, validate_every=3,
                        validation_size=8, augment="none")  # fmt: skip
    result = train(config)
    assert result.steps == 3
    assert load_model(result.model_path).meta["training"]["source"].startswith("synthetic")


def test_synthetic_training_from_stream_workers_resumes_exactly(tmp_path):
    """Two processes generating the stream: a run stopped at step 3 (not a multiple of the workers) and resumed
    ends with the weights of the uninterrupted run."""
    small = dict(instrument="neutron-cw", batch_size=4, validate_every=3, checkpoint_every=3, validation_size=8,
                 augment="none", stream_workers=2)  # fmt: skip
    whole = train(run_config(tmp_path / "a", "synthetic", max_steps=6, **small))
    train(run_config(tmp_path / "b", "synthetic", max_steps=3, **small))
    resumed = train(run_config(tmp_path / "b", "synthetic", max_steps=6, **small), resume=True)
    assert resumed.steps == whole.steps == 6
    a, b = load_model(whole.model_path).net.state_dict(), load_model(resumed.model_path).net.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(ValueError, match="stream-workers 2"):  # another count would reorder the batches
        train(run_config(tmp_path / "b", "synthetic", max_steps=9, **{**small, "stream_workers": 0}), resume=True)


def test_synthetic_training_balances_over_the_chosen_label_set(tmp_path):
    """--balance cs with space-group labels: the stream draws the 7 crystal systems equally, so monoclinic and
    triclinic (15 of 230 groups) are about 2/7 of the patterns instead of 6.5 %; the exported JSON says so."""
    from powdersym.train.data import PatternData

    def low_symmetry_share(config: TrainConfig) -> float:
        stream = PatternData(config)._stream(5, 64, max_batches=4)  # the training stream (on the CPU here)
        groups = torch.cat([labels["space_group"] for _, labels in stream])
        return float((groups <= 15).float().mean())

    common = dict(labels="sg", augment="none")
    assert low_symmetry_share(run_config(tmp_path, "synthetic", balance="cs", **common)) > 0.18  # 2/7 = 0.29
    assert low_symmetry_share(run_config(tmp_path, "synthetic", **common)) < 0.15  # 15/230 = 0.065
    with pytest.raises(ValueError, match="unknown label set"):
        run_config(tmp_path, "synthetic", balance="planets")
    config = run_config(tmp_path, "synthetic", balance="cs", instrument="neutron-cw", max_steps=1, batch_size=4,
                        validate_every=1, validation_size=4, augment="none", labels="sg")  # fmt: skip
    assert load_model(train(config).model_path).meta["training"]["balanced_over"] == "crystal_system"


def test_known_exponent_draws_towards_known_crystals_and_predict_undoes_it(tmp_path, monkeypatch):
    """--known-exponent 1: the stream draws the groups as often as known crystals take them (P-1 and P2_1/c far
    above 1/230), the JSON records the exponent, the known prior's Bayes factors become 1 (the model already learnt
    that prior), and `calibrate` draws its patterns from the same tempered distribution."""
    import powdersym.evaluate.calibrate_model as calibrate_model
    from powdersym.predict import prior_ratio
    from powdersym.structures.statistics import known_space_group_frequencies
    from powdersym.train.data import PatternData

    config = run_config(tmp_path, "synthetic", labels="sg", balance="cs", known_exponent=1.0, instrument="neutron-cw",
                        max_steps=1, batch_size=4, validate_every=1, validation_size=4, augment="none")  # fmt: skip
    stream = PatternData(config)._stream(5, 256, max_batches=4)
    groups = torch.cat([labels["space_group"] for _, labels in stream]).numpy()
    share = np.bincount(groups, minlength=231)[1:] / len(groups)
    known = known_space_group_frequencies()
    assert share[1] > 0.04 and share[13] > 0.02  # P-1 7.5 %, P2_1/c 4.7 % (balanced: 0.4 %)
    assert abs(share[[1, 13, 224]].sum() - known[[1, 13, 224]].sum()) < 0.04
    path = train(config).model_path
    meta = load_model(path).meta
    assert meta["training"]["known_exponent"] == 1.0 and meta["training"]["balanced_over"] == "crystal_system"
    np.testing.assert_allclose(prior_ratio(meta), 1.0, rtol=1e-9)
    seen = {}
    validation = calibrate_model.synthetic_validation

    def spy(instrument, n, seed, augment, balance, prior=None):
        seen.update(balance=balance, prior=prior)
        return validation(instrument, n, seed, augment=augment, balance=balance, prior=prior)

    monkeypatch.setattr(calibrate_model, "synthetic_validation", spy)
    stored = calibrate_model.calibrate_saved_model(path, n=16)
    assert seen["balance"] == "space_group"
    np.testing.assert_allclose(seen["prior"], known, rtol=1e-9)
    assert "exponent 1.0" in stored["calibration"]["data"]
    with pytest.raises(ValueError, match="known_exponent"):
        run_config(tmp_path, "synthetic", known_exponent=2.0)


def test_augmentation_ranges_reach_the_stream_the_model_json_and_calibration(tmp_path, monkeypatch):
    """--augment-range (sharper peaks: crystallites of 1000-10000 Å, no microstrain): the training stream's
    augmentation has the replaced ranges and the rest of 'realistic', the exported JSON records them, and
    `calibrate` draws its patterns with them; an unknown range is refused before training."""
    import powdersym.evaluate.calibrate_model as calibrate_model
    from powdersym.augment import AugmentConfig
    from powdersym.train.data import PatternData

    ranges = {"crystallite_size": (1000.0, 10000.0), "microstrain": None}
    config = run_config(tmp_path, "synthetic", instrument="neutron-cw", labels="sg", max_steps=1, batch_size=4,
                        validate_every=1, validation_size=4, augment_ranges=ranges)  # fmt: skip
    drawn = PatternData(config)._stream(5, 4, max_batches=1).settings.augment_config
    assert drawn.crystallite_size == (1000.0, 10000.0) and drawn.microstrain is None
    assert drawn.replace(crystallite_size=None, microstrain=None) == AugmentConfig.realistic("neutron-cw").replace(
        crystallite_size=None, microstrain=None)  # fmt: skip
    path = train(config).model_path
    assert load_model(path).meta["training"]["augment_ranges"] == {"crystallite_size": [1000.0, 10000.0], "microstrain": None}

    seen = {}
    validation = calibrate_model.synthetic_validation

    def spy(instrument, n, seed, augment, balance):
        seen["augment"] = augment
        return validation(instrument, n, seed, augment=augment, balance=balance)

    monkeypatch.setattr(calibrate_model, "synthetic_validation", spy)
    stored = calibrate_model.calibrate_saved_model(path, n=16)
    assert seen["augment"].crystallite_size == (1000.0, 10000.0) and seen["augment"].microstrain is None
    assert "training ranges" in stored["calibration"]["data"]
    with pytest.raises(ValueError, match="unknown augmentation range 'sharpness'"):
        run_config(tmp_path, "synthetic", augment_ranges={"sharpness": (1, 2)})
    with pytest.raises(ValueError, match="apply to synthetic data"):
        run_config(tmp_path, "train.h5", augment_ranges=ranges)


def test_evaluation_on_the_training_file_uses_only_its_test_split(tmp_path, tiny_dataset):
    """A model evaluated on its own training file: only the rows of its recorded test split are scored (rebuilt from
    the seed in the model's JSON), in the model's own label set, and the overlap with the training rows is computed."""
    from powdersym.evaluate.run import evaluate_model, recorded_split
    from powdersym.predict import Predictor

    result = train(run_config(tmp_path, tiny_dataset, labels="cs", max_steps=2, validate_every=2))
    predictor = Predictor.load(result.model_path, any_label_set=True)
    report = evaluate_model(predictor, tiny_dataset, "tiny", validation_size=16)
    test_rows = recorded_split(predictor.saved.meta).split["test"]
    assert 0 < len(test_rows) < len(PatternDataset(tiny_dataset))
    assert report.n_samples + report.n_excluded == len(test_rows)
    assert report.label_set == "crystal_system"
    assert "n_seen" in report.overlap_counts["formula"]
    with pytest.raises(Exception, match="space-group"):
        Predictor.load(result.model_path)  # predict itself needs a 230-class model


def test_continuing_a_synthetic_run_with_the_same_seed_warns_of_replayed_data(tmp_path):
    """`--init` from a model trained on the synthetic stream: the same seed restarts the same stream (the model would
    see its training patterns again), so the run must say so; another seed gives fresh data and no warning."""
    import warnings

    small = dict(instrument="neutron-cw", max_steps=2, batch_size=4, validate_every=2, validation_size=8, augment="none")
    first = train(run_config(tmp_path / "a", "synthetic", **small))
    with pytest.warns(UserWarning, match="replays the same patterns"):
        train(run_config(tmp_path / "b", "synthetic", init=str(first.model_path), **small))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*replays the same patterns.*")
        train(run_config(tmp_path / "c", "synthetic", init=str(first.model_path), seed=1, **small))


def test_a_fine_tuned_model_carries_the_legs_that_made_it(tmp_path):
    """Each `--init` run records the legs of its starting model and its own, so a model card's history (steps,
    seeds, patterns drawn) comes from the weights' JSON, not from notes kept by hand."""
    small = dict(instrument="neutron-cw", batch_size=4, validate_every=2, validation_size=8, augment="none")
    first = train(run_config(tmp_path / "a", "synthetic", max_steps=2, **small))
    assert "legs" not in load_model(first.model_path).meta["training"]  # a first run is its own history
    second = train(run_config(tmp_path / "b", "synthetic", init=str(first.model_path), seed=1, max_steps=3,
                              lr_schedule="cosine", **{**small, "augment": "realistic"}, augment_ranges={"zero_shift": (0.0, 0.01)}))  # fmt: skip
    third = train(run_config(tmp_path / "c", "synthetic", init=str(second.model_path), seed=2, max_steps=1, **small))
    training = load_model(third.model_path).meta["training"]
    legs = training["legs"]
    assert [(leg["seed"], leg["steps"], leg["batch"]) for leg in legs] == [(0, 2, 4), (1, 3, 4), (2, 1, 4)]
    assert [leg.get("init") for leg in legs] == [None, str(first.model_path), str(second.model_path)]
    assert legs[1]["lr_schedule"] == "cosine" and "lr_schedule" not in legs[2]
    assert legs[1]["augment_ranges"] == {"zero_shift": [0.0, 0.01]}
    assert training["patterns_seen"] == (2 + 3 + 1) * 4
    assert training["steps"] == 1  # the entry itself still describes the last leg


def test_cosine_schedule_decays_the_rate_to_zero_over_the_steps(tmp_path, tiny_dataset):
    result = train(run_config(tmp_path, tiny_dataset, max_steps=8, lr_schedule="cosine"))
    log = np.genfromtxt(tmp_path / "run" / "logs" / "metrics.csv", delimiter=",", names=True)
    lr = log["lr"][~np.isnan(log["lr"])]
    assert result.steps == 8 and len(lr) == 8
    expected = 3e-3 * 0.5 * (1 + np.cos(np.pi * np.arange(8) / 8))  # set before each batch, from its step
    assert np.allclose(lr, expected, rtol=1e-6)
    constant = train(run_config(tmp_path / "c", tiny_dataset, max_steps=3))
    log = np.genfromtxt(tmp_path / "c" / "run" / "logs" / "metrics.csv", delimiter=",", names=True)
    assert constant.steps == 3 and np.allclose(log["lr"][~np.isnan(log["lr"])], 3e-3)


def test_cosine_schedule_follows_the_clock_and_keeps_its_base_rate_on_resume():
    from types import SimpleNamespace

    from powdersym.train.schedule import CosineOverBudget, budget_fraction

    assert budget_fraction(10, 100, elapsed=30.0, max_seconds=60.0) == 0.5  # time runs out first
    assert budget_fraction(90, 100, elapsed=30.0, max_seconds=60.0) == 0.9
    assert budget_fraction(10, 100, elapsed=999.0, max_seconds=None) == 0.1
    # a resumed optimiser carries the decayed rate and the base it started from
    optimiser = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-5)
    optimiser.param_groups[0]["initial_lr"] = 1e-3
    trainer = SimpleNamespace(optimizers=[optimiser], callbacks=[], global_step=25)
    schedule = CosineOverBudget(max_steps=100)
    schedule.on_train_start(trainer, None)
    schedule.on_train_batch_start(trainer, None, None, 0)
    assert optimiser.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi / 4)))
