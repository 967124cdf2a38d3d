"""Data-parallel training (DistributedDataParallel, gloo on CPU): 2 processes = 1 process, same global batch."""

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_train as t  # noqa: E402  (tiny model and data shared with the training tests)

from minimace.checkpoint import load_checkpoint  # noqa: E402
from minimace.train import TrainConfig, train  # noqa: E402

CONFIG = dict(t.FAST, max_epochs=2, batch_size=4, progress=False)


def _worker(rank: int, world: int, init_file: str, run_dir: str, config: dict):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        train_g, valid_g = t.load_ethanol()
        train(t.tiny_model(), train_g, valid_g, TrainConfig(**config), run_dir=run_dir, log=t._quiet)
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path, name, config, world=2):
    # fork: the workers inherit the imported modules (spawn would import torch again, ~5 s per process)
    mp.start_processes(_worker, args=(world, str(tmp_path / f"{name}.init"), str(tmp_path / name), config),
                       nprocs=world, join=True, start_method="fork")
    return load_checkpoint(tmp_path / name / "checkpoint.pt")


@pytest.mark.slow
def test_two_processes_equal_one(ethanol, tmp_path):
    train_g, valid_g = ethanol
    train(t.tiny_model(), train_g, valid_g, TrainConfig(**CONFIG), run_dir=tmp_path / "one", log=t._quiet)
    one = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    two = _spawn(tmp_path, "two", CONFIG)
    assert [r["train_loss"] for r in one["run_state"]["history"]] == pytest.approx(
        [r["train_loss"] for r in two["run_state"]["history"]], rel=1e-10)
    for k, v in one["model_state"].items():
        torch.testing.assert_close(two["model_state"][k], v, rtol=1e-9, atol=1e-11, msg=k)
    # negative control: the comparison is not vacuous, training moved the weights far beyond the tolerance
    init = t.tiny_model().state_dict()
    moved = max((two["model_state"][k] - v).abs().max().item() for k, v in init.items() if v.is_floating_point())
    assert moved > 1e-3


@pytest.fixture(scope="module")
def ethanol():
    return t.load_ethanol()


@pytest.mark.slow
def test_torchrun_cli_equals_one_process(tmp_path):
    """``torchrun --nproc-per-node 2 -m minimace.cli train`` (gloo on CPU) gives the 1-process result."""
    import ase.io
    import subprocess

    from minimace.cli import resolve_options, run_train

    ase.io.write(tmp_path / "train.xyz", ase.io.read(t.ethanol_file(), ":10"), format="extxyz")
    flags = {"train_file": str(tmp_path / "train.xyz"), "valid_fraction": "0.2", "E0s": "average", "max_epochs": "2",
             "hidden_irreps": "8x0e+8x1o", "max_ell": "1", "correlation": "2", "r_max": "4", "radial_MLP": "[16]",
             "MLP_irreps": "8x0e", "batch_size": "4", "forces_weight": "100", "progress": "false", "device": "cpu"}
    run_train(resolve_options({**flags, "run_dir": str(tmp_path / "one")}, None), log=t._quiet)
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()] + [f"--run-dir={tmp_path / 'two'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "minimace.cli", "train", *argv], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("model:") == 1  # rank 0 alone prints
    one, two = (load_checkpoint(tmp_path / d / "checkpoint.pt")["model_state"] for d in ("one", "two"))
    for k, v in one.items():
        torch.testing.assert_close(two[k], v, rtol=1e-9, atol=1e-11, msg=k)
