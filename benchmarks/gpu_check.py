"""The GPU check behind ``benchmarks/gpu_check.sh``: one table of ok / fail / skip rows, each with its reason.

Parts (each in its own subprocess with a time limit, so that a crash, an out-of-memory or a missing package
fails or skips its rows and never the table):

- ``tests``  the ``cuda``-marked tests (tests/test_cuda.py) on the device, one row per test (pytest's JUnit XML);
- ``speed``  energy + forces of minimace and mace-torch (same weights, converted by ``from_mace_torch``) on
  ethanol and a 3000-atom water box, float32 and float64, mace-torch with cuequivariance where it imports;
  peak GPU memory of each;
- ``train``  training steps per second (batch of 10 molecules), and fixed batches vs ``--max-edges-per-batch``
  on a mixed-size set (``bench_batching.compare``);
- ``ddp``    ``minimace preprocess`` then ``torchrun --nproc-per-node 1 -m minimace.cli train --train-shards``
  with an edge budget: NCCL on a GPU (gloo in the dry-run).

``--dry-run`` runs the same code on small sizes (``--device cpu`` on a machine without a GPU): that is what
``gpu_check.sh`` runs there, and what tests/test_gpu_check.py runs.

    python benchmarks/gpu_check.py --device cuda [--mace-python .venv-mace/bin/python] [--out results_gpu.md]
    python benchmarks/gpu_check.py --device cpu --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MARK = "GPU_CHECK_ROWS:"
#: time limit of each part on a GPU (s): together within the 5 minutes of the check. The CPU dry-run's limits
#: are DRY_RUN_SCALE times longer (a CPU shared with other jobs starts Python and torch slowly).
LIMITS = {"tests": 110, "speed": 90, "train": 60, "ddp": 40}
DRY_RUN_SCALE = 5


def limit(name: str, args) -> float:
    return LIMITS[name] * (DRY_RUN_SCALE if args.dry_run else 1)


def row(part: str, check: str, status: str, result: str = "", detail: str = "") -> dict:
    return {"part": part, "check": check, "status": status, "result": result, "detail": detail}


# --------------------------------------------------------------------------------------------------
# Helpers that run inside the parts
# --------------------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_median(fn, device: str, repeat: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in ms, the device synchronised around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def peak_memory(device: str, fn) -> str:
    """Peak memory of ``fn()``: GPU memory allocated by torch (GiB), or 'n/a' on the CPU."""
    import torch

    if not device.startswith("cuda"):
        fn()
        return "n/a (cpu)"
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    fn()
    _sync(device)
    return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"


def water_box(n_molecules: int, seed: int = 0):
    """A periodic box of rigid water molecules at 1 g/cm³ (random positions and orientations, O–O ≥ 2.5 Å)."""
    import numpy as np
    from ase import Atoms
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    L = (n_molecules * 18.015 / 0.602214) ** (1 / 3)
    mol = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
    oxygens = np.zeros((0, 3))
    while len(oxygens) < n_molecules:
        p = rng.uniform(0, L, 3)
        d = oxygens - p
        d -= L * np.round(d / L)
        if len(d) == 0 or np.min(np.linalg.norm(d, axis=1)) >= 2.5:
            oxygens = np.vstack([oxygens, p])
    positions = [p + mol @ Rotation.random(random_state=rng).as_matrix().T for p in oxygens]
    return Atoms("OH2" * n_molecules, positions=np.concatenate(positions), cell=[L, L, L], pbc=True)


# --------------------------------------------------------------------------------------------------
# Part: the cuda-marked tests
# --------------------------------------------------------------------------------------------------


def part_tests(args) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "-o", "addopts=",
               f"--junitxml={xml}", str(REPO / "tests" / "test_cuda.py")]
        if args.dry_run and os.environ.get("GPU_CHECK_TESTS") != "all":
            cmd += ["-k", "equal_the_cpu or gradient"]  # the quick ones (GPU_CHECK_TESTS=all: every one)
        env = {**os.environ, "MINIMACE_TEST_DEVICE": args.device}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=limit("tests", args) - 5)
        if not xml.is_file():
            return [row("tests", "pytest -m cuda", "fail", "", (out.stdout + out.stderr).strip()[-300:])]
        rows = []
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = case.get("name")
            failure = case.find("failure") if case.find("failure") is not None else case.find("error")
            skipped = case.find("skipped")
            if failure is not None:
                rows.append(row("tests", name, "fail", "", (failure.get("message") or "")[:300]))
            elif skipped is not None:
                rows.append(row("tests", name, "skip", "", (skipped.get("message") or "")[:300]))
            else:
                rows.append(row("tests", name, "ok", f"{float(case.get('time', 0)):.1f} s"))
        return rows or [row("tests", "pytest -m cuda", "fail", "", "no test collected")]


# --------------------------------------------------------------------------------------------------
# Part: energy + forces, minimace vs mace-torch (run by the Python that has mace-torch, when there is one)
# --------------------------------------------------------------------------------------------------


def _models(dtype, hidden: str, device: str):
    """(mace-torch model or None, minimace model, mace-torch's batch converter, why mace-torch is absent),
    the two models with the same weights."""
    sys.path.insert(0, str(HERE))
    try:
        from common import both_models, mace_batch  # imports mace
    except ImportError as err:
        from common_minimace import minimace_model

        return None, minimace_model(dtype, hidden).to(device), None, f"mace-torch not importable here ({err})"
    mm, ours = both_models(dtype, hidden_irreps=hidden)
    return mm.to(device), ours.to(device), mace_batch, ""


def _cueq(mm, device: str):
    """mace-torch's model through cuequivariance, or (None, reason)."""
    try:
        import cuequivariance_torch  # noqa: F401
        from mace.cli.convert_e3nn_cueq import run as e3nn_to_cueq
    except ImportError as err:
        return None, f"cuequivariance not installed ({err}); pip install cuequivariance-torch " \
                     "cuequivariance-ops-torch-cu12 in the mace-torch environment"
    try:
        return e3nn_to_cueq(mm, device=device, return_model=True), ""
    except Exception as err:  # noqa: BLE001 — any failure of the optional path is a skip with its reason
        return None, f"conversion failed: {type(err).__name__}: {err}"[:300]


def part_speed(args) -> list[dict]:
    import torch

    from minimace.graph import atoms_to_graph, batch_graphs, to_device

    sys.path.insert(0, str(HERE))
    from common_minimace import ethanol

    hidden = "8x0e+8x1o" if args.dry_run else "128x0e+128x1o"
    structures = {"ethanol (9 atoms)": ethanol(), "water box": water_box(8 if args.dry_run else 1000)}
    repeat = 1 if args.dry_run else 10
    rows = []
    for dtype_name in ("float32", "float64"):
        dtype = getattr(torch, dtype_name)
        mm, ours, mace_batch, why = _models(dtype, hidden, args.device)
        cueq, why_cueq = _cueq(mm, args.device) if mm is not None else (None, why)
        for name, atoms in structures.items():
            cpu_batch = batch_graphs([atoms_to_graph(atoms, 5.0, dtype=dtype)])
            batch = to_device(cpu_batch, args.device, dtype)
            label = f"E+F {name.split(' (')[0]} {len(atoms)} atoms, {batch['edge_index'].shape[1]} edges, {dtype_name}"
            run_ours = lambda: ours(batch, compute_forces=True)  # noqa: E731
            t_ours = time_median(run_ours, args.device, repeat)
            mem_ours = peak_memory(args.device, run_ours)
            if mm is None:
                rows.append(row("speed", label, "ok", f"minimace {t_ours:.1f} ms", f"{mem_ours}; mace-torch: {why}"))
                continue
            mb = to_device(mace_batch(cpu_batch, dtype), args.device)
            run_mace = lambda: mm(mb, compute_force=True)  # noqa: E731
            ref, out = run_mace(), run_ours()
            d_e = float((ref["energy"] - out["energy"]).abs().max() / ref["energy"].abs().max())
            d_f = float((ref["forces"] - out["forces"]).abs().max())
            t_mace = time_median(run_mace, args.device, repeat)
            mem_mace = peak_memory(args.device, run_mace)
            bound = 1e-10 if dtype == torch.float64 else 1e-4
            status = "ok" if d_e < bound else "fail"
            rows.append(row("speed", label, status, f"{t_mace:.1f} → {t_ours:.1f} ms ({t_ours / t_mace:.2f})",
                            f"mace-torch → minimace; peak {mem_mace} → {mem_ours}; relative ΔE {d_e:.1e}, "
                            f"largest ΔF {d_f:.1e} eV/Å"))
            if cueq is None:
                rows.append(row("speed", label + ", mace-torch cuequivariance", "skip", "", why_cueq))
                continue
            run_cueq = lambda: cueq(mb, compute_force=True)  # noqa: E731
            d_e = float((cueq(mb, compute_force=True)["energy"] - ref["energy"]).abs().max() / ref["energy"].abs().max())
            t_cueq = time_median(run_cueq, args.device, repeat)
            rows.append(row("speed", label + ", mace-torch cuequivariance", "ok",
                            f"{t_cueq:.1f} ms (minimace / cueq {t_ours / t_cueq:.2f})",
                            f"peak {peak_memory(args.device, run_cueq)}; relative ΔE vs e3nn {d_e:.1e}"))
    return rows


# --------------------------------------------------------------------------------------------------
# Part: training steps per second, fixed vs edge-budget batches
# --------------------------------------------------------------------------------------------------


def part_train(args) -> list[dict]:
    import torch

    sys.path.insert(0, str(HERE))
    from bench_batching import compare, mixed_set
    from common_minimace import minimace_model

    from minimace.data import read_configurations
    from minimace.datasets import bundled_dir
    from minimace.graph import batch_graphs, to_device
    from minimace.train import loss_terms, weighted_loss

    hidden = "8x0e+8x1o" if args.dry_run else "128x0e+128x1o"
    small = dict(max_ell=2, correlation=2, radial_MLP=[16]) if args.dry_run else {}
    configs = read_configurations(bundled_dir() / "train.xyz", index=":10")
    rows = []
    for dtype_name in ("float32", "float64"):
        dtype = getattr(torch, dtype_name)
        model = minimace_model(dtype, hidden, **small).to(args.device)
        batch = to_device(batch_graphs([c.to_graph(5.0, dtype) for c in configs]), args.device, dtype)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            pred = model(batch, compute_forces=True, training=True)
            weighted_loss(loss_terms(pred, batch), {"energy": 1.0, "forces": 100.0}).backward()
            opt.step()

        ms = time_median(step, args.device, 1 if args.dry_run else 10)
        rows.append(row("train", f"training step, 10 molecules, {dtype_name}, hidden {hidden}", "ok",
                        f"{1000 / ms:.1f} steps/s", f"{ms:.1f} ms/step; peak {peak_memory(args.device, step)}"))
    structures = mixed_set(n_molecules=8 if args.dry_run else 200, n_boxes=2 if args.dry_run else 40)
    for r in compare(structures, args.device, "float32", hidden="4x0e+4x1o" if args.dry_run else "64x0e+64x1o",
                     batch_size=4 if args.dry_run else 8, epochs=1):
        rows.append(row("train", f"epoch of {len(structures)} mixed structures, {r['mode']}", "ok",
                        f"{r['structures_per_s']:.1f} structures/s",
                        f"{r['steps']} steps, edges/batch max {r['max_edges']} (mean {r['mean_edges']:.0f}); "
                        f"peak {r['peak_gpu']}"))
    return rows


# --------------------------------------------------------------------------------------------------
# Part: one process under torchrun (NCCL on a GPU), from shards, with an edge budget
# --------------------------------------------------------------------------------------------------


def part_ddp(args) -> list[dict]:
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        train_file = REPO / "minimace" / "data" / "train.xyz"
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        pre = subprocess.run([sys.executable, "-m", "minimace.cli", "preprocess", f"--train-file={train_file}",
                              f"--train-index=:{20 if args.dry_run else 100}", "--valid-fraction=0.2", "--E0s=average",
                              "--r-max=4.5", f"--out={tmp}/shards"], capture_output=True, text=True, env=env,
                             timeout=limit("ddp", args) / 2)
        if pre.returncode:
            return [row("ddp", "minimace preprocess", "fail", "", pre.stderr.strip()[-300:])]
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                              "-m", "minimace.cli", "train", f"--train-shards={tmp}/shards", "--max-edges-per-batch=800",
                              "--hidden-irreps=16x0e+16x1o", "--max-ell=2", "--correlation=2", "--max-epochs=2",
                              f"--device={args.device}", "--progress=false", f"--run-dir={tmp}/run"],
                             capture_output=True, text=True, env=env, timeout=limit("ddp", args) - 5)
        wall = time.perf_counter() - t0
        backend = "nccl" if args.device.startswith("cuda") else "gloo"
        if out.returncode:
            return [row("ddp", f"torchrun 1 process ({backend}), shards, edge budget", "fail", "",
                        out.stderr.strip()[-300:])]
        if f"backend {backend}" not in out.stdout:
            return [row("ddp", f"torchrun 1 process ({backend})", "fail", "", "no 'backend " + backend + "' line: "
                        + out.stdout.strip()[-200:])]
        with open(f"{tmp}/run/log.csv") as f:
            log = list(csv.DictReader(f))
        steps = sum(int(r["steps"]) for r in log)
        return [row("ddp", f"torchrun 1 process ({backend}), shards, edge budget", "ok",
                    f"{steps} steps in 2 epochs", f"{wall:.1f} s with start-up; DistributedDataParallel over {backend}")]


PARTS = {"tests": part_tests, "speed": part_speed, "train": part_train, "ddp": part_ddp}


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------


def run_part(name: str, args, python: str) -> list[dict]:
    """Run one part in its own process; a crash or a timeout is a failed row naming it."""
    cmd = [python, str(Path(__file__).resolve()), "--part", name, "--device", args.device] + \
        (["--dry-run"] if args.dry_run else [])
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PYTHONUNBUFFERED": "1"}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=limit(name, args))
    except subprocess.TimeoutExpired:
        return [row(name, name, "fail", "", f"did not finish within {limit(name, args):.0f} s")]
    for line in reversed(out.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (out.stderr or out.stdout).strip().splitlines()
    return [row(name, name, "fail", "", f"exit status {out.returncode}: " + (tail[-1] if tail else "no output"))]


def table(rows: list[dict]) -> str:
    header = ["part", "check", "status", "result", "detail"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[k]).replace("|", "/").replace("\n", " ") for k in header) + " |" for r in rows]
    return "\n".join(lines)


def machine(device: str) -> str:
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else "no GPU"
    return f"{platform.node()}: {gpu}; torch {torch.__version__} (CUDA {torch.version.cuda}); Python {platform.python_version()}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dry-run", action="store_true", help="small sizes (the CPU dry-run of gpu_check.sh)")
    p.add_argument("--mace-python", default=None, help="a Python where mace-torch imports (for the speed part)")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)  # internal: run one part, print its rows
    args = p.parse_args(argv)
    if args.part:
        try:
            rows = PARTS[args.part](args)
        except Exception as err:  # noqa: BLE001 — a part that breaks reports why, the table goes on
            rows = [row(args.part, args.part, "fail", "", f"{type(err).__name__}: {err}"[:300])]
        print(MARK + json.dumps(rows))
        return 0
    start, rows = time.perf_counter(), []
    for name in args.parts.split(","):
        python = args.mace_python if name == "speed" and args.mace_python else sys.executable
        t0 = time.perf_counter()
        rows += run_part(name, args, python)
        print(f"[gpu_check] {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    text = (f"GPU check on {machine(args.device)}, device {args.device}{' (dry-run)' if args.dry_run else ''}, "
            f"{time.perf_counter() - start:.0f} s\n\n{table(rows)}\n")
    print(text)
    if args.out:
        Path(args.out).write_text(f"# GPU check (`bash benchmarks/gpu_check.sh`)\n\n{text}")
    return 1 if any(r["status"] == "fail" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
