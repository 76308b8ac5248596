"""Training on several devices (DDP), proved on the CPU with two processes and the gloo backend: every process draws
its own batches (and resumes them exactly), validation metrics agree across processes, and rank 0 alone reports
and exports a model that loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from powdersym.data import PatternDataset, build_dataset
from powdersym.models.saved import load_model
from powdersym.simulate import preset
from powdersym.train import TrainConfig
from powdersym.train.data import BatchIndexSampler, PatternData
from powdersym.train.run import strategy_for


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> str:
    """32 clean synthetic patterns on a coarse grid (381 points), crystal systems balanced."""
    path = tmp_path_factory.mktemp("ddp") / "tiny.h5"
    return str(build_dataset(path, "synthetic", preset("neutron-cw", x_step=0.4), 32, label_set="crystal_system", seed=3))


def batches(sampler: BatchIndexSampler, n: int) -> list[np.ndarray]:
    drawn = iter(sampler)
    return [next(drawn) for _ in range(n)]


@pytest.mark.parametrize("balanced", [False, True])
def test_ranks_draw_their_own_batches_and_resume_them(balanced):
    rows, classes = np.arange(100, 400), np.arange(300) % 7
    kwargs = dict(batch_size=16, classes=classes if balanced else None, seed=5)
    rank0, rank1 = batches(BatchIndexSampler(rows, rank=0, **kwargs), 6), batches(BatchIndexSampler(rows, rank=1, **kwargs), 6)
    assert not any(np.array_equal(a, b) for a, b in zip(rank0, rank1))
    assert all(np.isin(batch, rows).all() for batch in rank0 + rank1)
    resumed = batches(BatchIndexSampler(rows, rank=1, start=4, **kwargs), 2)
    assert all(np.array_equal(a, b) for a, b in zip(resumed, rank1[4:]))


def test_the_data_module_gives_the_sampler_its_process_rank(tiny_dataset):
    data = PatternData(TrainConfig(data=tiny_dataset, labels="cs", batch_size=8, num_workers=0))
    data.setup()
    drawn = {}
    for rank in (0, 1):
        data.trainer = SimpleNamespace(global_rank=rank, world_size=2, global_step=3)
        sampler = data.train_dataloader().sampler
        assert (sampler.rank, sampler.start) == (rank, 3)
        drawn[rank] = next(iter(sampler))
    assert not np.array_equal(drawn[0], drawn[1])


def test_several_devices_train_with_ddp():
    assert strategy_for(TrainConfig(devices=1)) == "auto"
    assert strategy_for(TrainConfig(devices=2, accelerator="cpu")) == "ddp"
    assert strategy_for(TrainConfig(devices="0,1", accelerator="gpu")) == "ddp"
    # the SGAN's discriminator step does not reach the generator's parameters
    assert strategy_for(TrainConfig(devices=2, sgan=True)) == "ddp_find_unused_parameters_true"


# Run as a script: Lightning starts the second process by running it again (as it re-runs `powdersym train`).
# Each process records the rows its sampler gave and what its training returned.
SCRIPT = """
import json, sys
import numpy as np
import torch.distributed as dist
import powdersym.train
from powdersym.cli import app
from powdersym.train import TrainConfig
from powdersym.train.data import BatchIndexSampler

out, data = sys.argv[1], sys.argv[2]
draw, train = BatchIndexSampler.__iter__, powdersym.train.train

def recorded_draw(sampler):
    with open(f"{out}/rows_{dist.get_rank()}.txt", "a") as rows:
        for batch in draw(sampler):
            rows.write(" ".join(map(str, batch)) + "\\n")
            rows.flush()
            yield batch

def recorded_train(config, resume=False):
    result = train(config, resume)
    with open(f"{out}/{config.out.rsplit('/', 1)[-1]}_{dist.get_rank()}.json", "w") as f:
        json.dump({"steps": result.steps, "metrics": result.metrics}, f)
    return result

BatchIndexSampler.__iter__, powdersym.train.train = recorded_draw, recorded_train
app(["train", "--data", data, "-o", f"{out}/stored", "--labels", "cs", "--steps", "4", "--batch-size", "4",
     "--validate-every", "2", "--checkpoint-every", "2", "--patience", "1", "--workers", "0", "--devices", "2"],
    standalone_mode=False)
recorded_train(TrainConfig(data="synthetic", labels="cs", out=f"{out}/synthetic", max_steps=2, batch_size=4,
                           augment="none", validation_size=8, validate_every=2, checkpoint_every=2, patience=None,
                           num_workers=0, devices=2, accelerator="cpu", progress=False))
"""


def test_two_processes_on_the_cpu_train_and_export(tmp_path, tiny_dataset):
    (tmp_path / "ddp_script.py").write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, str(tmp_path / "ddp_script.py"), str(tmp_path), tiny_dataset],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Starting with 2 processes" in run.stdout + run.stderr
    assert run.stdout.count("trained 4 steps") == 1  # rank 0 alone reports
    # stored patterns: both processes stepped 4 times on their own rows of the training part, and agree on the
    # validation metrics; rank 0 exported a model that loads and predicts
    results = [json.loads((tmp_path / f"stored_{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["steps"] for r in results] == [4, 4]
    assert results[0]["metrics"]["val_loss"] == results[1]["metrics"]["val_loss"]
    rows = [[np.array(line.split(), dtype=int) for line in (tmp_path / f"rows_{rank}.txt").read_text().splitlines()] for rank in (0, 1)]
    assert min(len(rows[0]), len(rows[1])) >= 4
    assert not any(np.array_equal(a, b) for a, b in zip(rows[0][:4], rows[1][:4]))
    saved = load_model(tmp_path / "stored" / "model.safetensors")
    assert saved.meta["training"]["steps"] == 4 and saved.meta["training"]["hardware"].startswith("2 x")
    x, _ = PatternDataset(tiny_dataset).read(np.arange(3))
    assert saved.net(x).shape == (3, 7)
    assert (tmp_path / "stored" / "checkpoints" / "best.ckpt").is_file()
    # synthetic stream: each process trains and validates on its own patterns (the training losses differ), and
    # the validation metrics are averaged over both (they agree)
    results = [json.loads((tmp_path / f"synthetic_{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["steps"] for r in results] == [2, 2]
    assert results[0]["metrics"]["train_loss"] != results[1]["metrics"]["train_loss"]
    assert results[0]["metrics"]["val_loss"] == results[1]["metrics"]["val_loss"]
    assert "2 shards" in load_model(tmp_path / "synthetic" / "model.safetensors").meta["training"]["validation"]
