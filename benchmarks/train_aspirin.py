"""Train minimace and mace-torch on rMD17 aspirin with the same data, hyperparameters and wall-clock budget.

Protocol (MACE paper, arXiv:2206.07697, Table 1): the first 1000 configurations of ``rmd17_aspirin_train.xyz``
split into 950 training + 50 validation, test on ``rmd17_aspirin_test.xyz``, E0s from
``botnet_ethanol/isolated_atoms.xyz`` (same PBE/def2-SVP level of theory). Both codes get the same files,
the same hyperparameters (AMSGrad lr 0.01, ReduceLROnPlateau 0.8/50, EMA 0.99, λ_E = 1, λ_F = 1000, batch 5,
gradient clipping 10, r_max 5 Å, 8 Bessel, p = 5, max_ell 3, correlation 3, 2 layers) and the same
wall-clock training budget (``--budget`` minutes, data preparation and final evaluation not counted), one
after the other on the same machine with the same number of threads. mace-torch (``.venv-mace``) runs its own
``mace_run_train``; the budget is enforced by a small driver that stops its training loop when the time is
spent, after which mace-torch finishes as usual (best checkpoint, EMA weights). Test errors of both are
computed from their predictions by the same function (``minimace.train.metrics_from_predictions``).

Differences that remain: mace-torch's ``MACE`` model has no energy shift (minimace uses the mean interaction
energy per atom as μ), and each code initialises its weights with its own random generator.

Usage (from the repository root)::

    .venv/bin/python benchmarks/train_aspirin.py --budget 30            # the lead's full run
    .venv/bin/python benchmarks/train_aspirin.py --budget 1 --n-test 100  # a quick end-to-end check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ase.io
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minimace.datasets import data_dir, shared_e0s  # noqa: E402
from minimace.train import error_table, metrics_from_predictions  # noqa: E402

MACE_PYTHON = Path(os.environ.get("MINIMACE_MACE_PYTHON", REPO / ".venv-mace" / "bin" / "python"))

# mace-torch's training loop under a wall-clock budget: once it is spent, the current epoch stops taking steps
# (mace-torch then evaluates and checkpoints that epoch as usual) and the next epoch ends the training loop.
_MACE_DRIVER = textwrap.dedent("""
    import importlib, logging, sys, time
    import mace  # noqa: F401  (before e3nn)
    from mace import tools
    loop = importlib.import_module("mace.tools.train")  # the module (tools.train is the function)

    budget_s = float(sys.argv.pop(1)) * 60
    class BudgetSpent(Exception):
        pass
    state = {"deadline": None}
    real_epoch, real_train = loop.train_one_epoch, tools.train

    def until_deadline(loader):
        for batch in loader:
            if time.monotonic() > state["deadline"]:
                return
            yield batch

    def train_one_epoch(*args, **kwargs):
        if time.monotonic() > state["deadline"]:
            raise BudgetSpent
        kwargs["data_loader"] = until_deadline(kwargs["data_loader"])
        return real_epoch(*args, **kwargs)

    def train(*args, **kwargs):
        state["deadline"] = time.monotonic() + budget_s
        try:
            return real_train(*args, **kwargs)
        except BudgetSpent:
            logging.info("wall-clock budget spent: training stopped")

    loop.train_one_epoch, tools.train = train_one_epoch, train
    from mace.cli.run_train import main
    main()
""")


def prepare(out: Path, n_test: int | None) -> dict[int, float]:
    """950/50/test extxyz files in ``out`` (outside the repository) and the E0s."""
    folder = data_dir() / "rmd17_aspirin"
    first = ase.io.read(folder / "rmd17_aspirin_train.xyz", ":1000")
    test = ase.io.read(folder / "rmd17_aspirin_test.xyz", f":{n_test}" if n_test else ":")
    out.mkdir(parents=True, exist_ok=True)
    for name, frames in (("train", first[:950]), ("valid", first[950:]), ("test", test)):
        ase.io.write(out / f"{name}.xyz", frames, format="extxyz")
    zs = sorted({int(z) for atoms in first for z in atoms.numbers})  # H, C, O (no N in aspirin)
    return {z: e for z, e in shared_e0s("botnet_ethanol").items() if z in zs}


def run(cmd: list[str], log: Path, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "MPLBACKEND": "Agg"}
    start = time.monotonic()
    with open(log, "w") as f:
        shown = ["<driver>" if "\n" in c else c for c in cmd]
        print(f"$ {' '.join(shown)}", flush=True)
        status = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO).returncode
    if status != 0:
        sys.exit(f"command failed ({status}); see {log}:\n" + "\n".join(log.read_text().splitlines()[-30:]))
    return time.monotonic() - start


def train_minimace(a, out: Path, e0s: dict) -> float:
    cmd = [sys.executable, "-m", "minimace.cli", "train", "--train-file", str(out / "train.xyz"),
           "--valid-file", str(out / "valid.xyz"), "--E0s", json.dumps(e0s), "--r-max", "5", "--num-bessel", "8",
           "--num-polynomial-cutoff", "5", "--max-ell", "3", "--correlation", "3", "--num-interactions", "2",
           "--hidden-irreps", a.hidden_irreps, "--MLP-irreps", "16x0e", "--radial-MLP", a.radial_mlp,
           "--batch-size", "5", "--valid-batch-size", "10", "--lr", "0.01", "--optimizer", "amsgrad",
           "--scheduler", "plateau", "--lr-factor", "0.8", "--scheduler-patience", "50", "--ema-decay", "0.99",
           "--energy-weight", "1", "--forces-weight", "1000", "--clip-grad", "10", "--weight-decay", "5e-7",
           "--max-epochs", "100000", "--time-budget", str(a.budget), "--dtype", a.dtype, "--device", a.device,
           "--seed", str(a.seed), "--progress", "false", "--run-dir", str(out / "run_minimace")]
    wall = run(cmd, out / "minimace.log", a.threads)
    run([sys.executable, "-m", "minimace.cli", "evaluate", str(out / "run_minimace" / "best.pt"), str(out / "test.xyz"),
         "--output", str(out / "pred_minimace.xyz"), "--dtype", a.dtype, "--device", a.device],
        out / "minimace_eval.log", a.threads)
    return wall


def train_mace(a, out: Path, e0s: dict) -> float:
    work = out / "run_mace"
    work.mkdir(exist_ok=True)
    e0 = "{" + ", ".join(f"{z}: {e}" for z, e in e0s.items()) + "}"
    cmd = [str(MACE_PYTHON), "-c", _MACE_DRIVER, str(a.budget), "--name", "aspirin", "--model", "MACE",
           "--train_file", str(out / "train.xyz"), "--valid_file", str(out / "valid.xyz"), "--E0s", e0,
           "--energy_key", "energy", "--forces_key", "forces", "--r_max", "5.0", "--num_radial_basis", "8",
           "--num_cutoff_basis", "5", "--max_ell", "3", "--correlation", "3", "--num_interactions", "2",
           "--hidden_irreps", a.hidden_irreps, "--MLP_irreps", "16x0e", "--radial_MLP", a.radial_mlp,
           "--scaling", "rms_forces_scaling", "--batch_size", "5", "--valid_batch_size", "10", "--lr", "0.01",
           "--amsgrad", "--scheduler", "ReduceLROnPlateau", "--lr_factor", "0.8", "--scheduler_patience", "50",
           "--ema", "--ema_decay", "0.99", "--loss", "weighted", "--energy_weight", "1", "--forces_weight", "1000",
           "--clip_grad", "10", "--weight_decay", "5e-7", "--max_num_epochs", "100000", "--default_dtype", a.dtype,
           "--device", a.device, "--seed", str(a.seed), "--error_table", "PerAtomMAE", "--eval_interval", "1",
           "--work_dir", str(work), "--results_dir", str(work / "results"), "--log_dir", str(work / "logs"),
           "--checkpoints_dir", str(work / "checkpoints"), "--model_dir", str(work)]
    wall = run(cmd, out / "mace.log", a.threads)
    run([str(MACE_PYTHON), "-m", "mace.cli.eval_configs", "--configs", str(out / "test.xyz"), "--model",
         str(work / "aspirin.model"), "--output", str(out / "pred_mace.xyz"), "--default_dtype", a.dtype,
         "--device", a.device, "--batch_size", "10"], out / "mace_eval.log", a.threads)
    return wall


def errors_of(pred_file: Path, ref_file: Path, energy_key: str, forces_key: str) -> dict:
    """Errors of the predictions in ``pred_file`` against the references of ``ref_file`` (same frames, in order)."""
    from minimace.data import read_configurations

    refs = read_configurations(ref_file)
    preds = ase.io.read(pred_file, ":")
    assert len(refs) == len(preds), (len(refs), len(preds))
    p = {"n_atoms": torch.tensor([len(c) for c in refs]),
         "ref_energy": torch.tensor([c.energy for c in refs]),
         "pred_energy": torch.tensor([float(a.info[energy_key]) for a in preds]),
         "energy_weight": torch.ones(len(refs)), "forces_weight": torch.ones(len(refs)),
         "ref_forces": torch.tensor(np.concatenate([c.forces for c in refs])),
         "pred_forces": torch.tensor(np.concatenate([a.arrays[forces_key] for a in preds]))}
    return metrics_from_predictions(p)


def progress(out: Path) -> dict[str, tuple[int, int]]:
    """(epochs, optimiser steps) each code completed, from minimace's log.csv and mace-torch's results file."""
    import csv

    rows = list(csv.DictReader(open(out / "run_minimace" / "log.csv")))
    done = {"minimace": (len(rows), sum(int(r["steps"]) for r in rows))}
    epochs, steps = 0, 0
    for path in (out / "run_mace" / "results").glob("*_train.txt"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            steps += row.get("mode") == "opt"
            if row.get("mode") == "eval" and row.get("epoch") is not None:
                epochs = max(epochs, int(row["epoch"]) + 1)
    done["mace-torch"] = (epochs, steps)
    return done


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=30.0, help="training wall-clock minutes for EACH code")
    parser.add_argument("--hidden-irreps", default="64x0e+64x1o", help="paper: 256x0e+256x1o (GPU)")
    parser.add_argument("--radial-mlp", default="[64,64,64]")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--n-test", type=int, default=None, help="first N test configurations (default: all 1800)")
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_aspirin"))
    parser.add_argument("--only", choices=("minimace", "mace"), help="run one of the two")
    a = parser.parse_args(argv)
    out = Path(a.out).resolve()
    e0s = prepare(out, a.n_test)
    walls, metrics = {}, {}
    if a.only in (None, "minimace"):
        walls["minimace"] = train_minimace(a, out, e0s)
        metrics["minimace"] = errors_of(out / "pred_minimace.xyz", out / "test.xyz", "minimace_energy",
                                        "minimace_forces")
    if a.only in (None, "mace"):
        walls["mace-torch"] = train_mace(a, out, e0s)
        metrics["mace-torch"] = errors_of(out / "pred_mace.xyz", out / "test.xyz", "MACE_energy", "MACE_forces")
    print(f"\nrMD17 aspirin, 950 train / 50 valid / {metrics[next(iter(metrics))]['n_configs']} test, "
          f"hidden {a.hidden_irreps}, {a.dtype}, {a.device}, {a.threads} threads, budget {a.budget} min each")
    print(error_table({f"{name} (test)": m for name, m in metrics.items()}))
    if len(metrics) == 2:
        done = progress(out)
        print("within the budget: " + "; ".join(f"{k} {e} epochs ({s} optimiser steps)" for k, (e, s) in done.items())
              + "; wall time of the training commands incl. set-up and final evaluation: "
              + ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items()))
    print("published (MACE paper, 256 channels, GPU, converged): E MAE 2.2 meV, F MAE 6.6 meV/Å")
    (out / "comparison.txt").write_text(error_table(metrics) + "\n")


if __name__ == "__main__":
    main()
