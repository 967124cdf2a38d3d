"""Memory of a training epoch from HDF5 shards does not grow with the number of structures.

For each size S (default 10³, 10⁴, 10⁵): S small generated molecules (H2O, NH3, CH4, CH3OH, rattled, with
random labels: the numbers do not matter, the memory does) are written with ``minimace.shards.write_prepared``;
then, in a fresh process each, (a) one training epoch of a tiny MACE from ``ShardDataset`` with edge-budget
batches (``minimace.train.epoch_batches``: the batches of ``minimace train --train-shards DIR
--max-edges-per-batch N``; energy + forces loss, backward, Adam) and (b) for comparison the same graphs held in
memory as a list, which is what training from an extxyz file does. Peak resident memory (VmHWM) of each process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shards.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
R_MAX = 4.0
BUDGET = 5000  # edges per batch


def generate(n: int, seed: int = 0) -> list:
    """``n`` rattled small molecules with random energies and forces (``minimace.data.Configuration``)."""
    from ase.build import molecule

    from minimace.data import Configuration

    rng = np.random.default_rng(seed)
    templates = [molecule(name) for name in ("H2O", "NH3", "CH4", "CH3OH")]
    out = []
    for k in range(n):
        t = templates[k % len(templates)]
        positions = t.positions + 0.1 * rng.standard_normal(t.positions.shape)
        out.append(Configuration(atomic_numbers=t.numbers.astype(np.int64), positions=positions,
                                 cell=np.zeros((3, 3)), pbc=np.zeros(3, bool), energy=float(rng.normal(-100, 5)),
                                 forces=rng.standard_normal(positions.shape), source=f"generated {k}"))
    return out


def write(size: int, folder: Path) -> dict:
    from minimace.shards import write_prepared

    t0 = time.perf_counter()
    configs = generate(size + 100)
    e0s = {1: -13.6, 6: -1029.0, 7: -1485.0, 8: -2042.0}
    write_prepared(folder, {"train": configs[:size], "valid": configs[size:]}, R_MAX, e0s, log=lambda *a: None)
    return {"write_s": time.perf_counter() - t0}


def epoch(folder: Path, in_memory: bool) -> dict:
    """One training epoch from the shards (or from all graphs held in a list); memory before and at peak."""
    sys.path.insert(0, str(HERE))
    from common_minimace import proc_status_gib
    from minimace.graph import batch_graphs
    from minimace.model import MACE
    from minimace.shards import ShardDataset
    from minimace.train import TrainConfig, epoch_batches, loss_terms, weighted_loss

    rss_start = proc_status_gib("VmRSS")
    data = ShardDataset(folder, "train")
    n_edges = data.n_edges
    if in_memory:
        data = [data[k] for k in range(len(data))]
    torch.manual_seed(0)
    model = MACE(r_max=R_MAX, max_ell=1, correlation=2, num_interactions=2, hidden_irreps="8x0e+8x1o",
                 MLP_irreps="8x0e", radial_MLP=[16], avg_num_neighbors=4.0, atomic_numbers=[1, 6, 7, 8],
                 atomic_energies=[-13.6, -1029.0, -1485.0, -2042.0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = epoch_batches(TrainConfig(max_edges_per_batch=BUDGET), n_edges, epoch=0)
    rss_before = proc_status_gib("VmRSS")
    t0, seen = time.perf_counter(), 0
    for chunk in batches:
        batch = batch_graphs([data[k] for k in chunk])
        opt.zero_grad(set_to_none=True)
        pred = model(batch, compute_forces=True, training=True)
        weighted_loss(loss_terms(pred, batch), {"energy": 1.0, "forces": 100.0}).backward()
        opt.step()
        seen += len(chunk)
    assert seen == len(n_edges)
    return {"steps": len(batches), "epoch_s": time.perf_counter() - t0, "rss_start_gib": rss_start,
            "rss_before_epoch_gib": rss_before, "peak_rss_gib": proc_status_gib("VmHWM"),
            "rss_end_gib": proc_status_gib("VmRSS")}


def _worker(args) -> dict:
    folder = Path(args.folder)
    if args.worker == "write":
        return write(args.size, folder)
    return epoch(folder, in_memory=args.worker == "memory")


def _run(kind: str, size: int, folder: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--size", str(size), "--folder", str(folder)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"{kind} {size}: {out.stderr[-2000:]}")
    return json.loads(lines[0][7:])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--memory-sizes", default="1000,10000,100000", help="sizes also measured with graphs in memory")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(HERE / "results_shards.md"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print("RESULT " + json.dumps(_worker(args)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            folder = Path(tmp) / str(size)
            r = {"size": size, **_run("write", size, folder, args.threads)}
            r["disk_mib"] = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
            r["shards"] = _run("shards", size, folder, args.threads)
            if str(size) in args.memory_sizes.split(","):
                r["memory"] = _run("memory", size, folder, args.threads)
            rows.append(r)
            print(json.dumps(r), flush=True)
    lines = ["# Memory of a training epoch from shards (`benchmarks/bench_shards.py`)", "",
             f"Generated small molecules (3–6 atoms, r_max {R_MAX} Å), tiny MACE (8x0e+8x1o, 2 layers), one epoch with "
             f"batches of at most {BUDGET} edges, {args.threads} thread(s), each measurement in a fresh process. "
             "Peak RSS = VmHWM of the whole process (Python, torch and the model included); 'growth' = peak minus "
             "the resident memory before the data were opened.", "",
             "| structures | shards on disk (MiB) | steps | epoch from shards (s) | peak RSS from shards (GiB) | growth "
             "(GiB) | peak RSS, graphs in memory (GiB) | growth (GiB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s, m = r["shards"], r.get("memory")
        mem = (f"{m['peak_rss_gib']:.3f} | {m['peak_rss_gib'] - m['rss_start_gib']:.3f}" if m else "- | -")
        lines.append(f"| {r['size']} | {r['disk_mib']:.1f} | {s['steps']} | {s['epoch_s']:.1f} | {s['peak_rss_gib']:.3f} | "
                     f"{s['peak_rss_gib'] - s['rss_start_gib']:.3f} | {mem} |")
    first, last = rows[0]["shards"], rows[-1]["shards"]
    lines += ["", f"From {rows[0]['size']} to {rows[-1]['size']} structures the peak RSS of an epoch from shards "
              f"changes by {last['peak_rss_gib'] - first['peak_rss_gib']:+.3f} GiB "
              f"({last['peak_rss_gib'] / first['peak_rss_gib']:.2f}×).", "",
              f"Reproduce: `OMP_NUM_THREADS={args.threads} .venv/bin/python benchmarks/bench_shards.py --sizes {args.sizes} "
              f"--memory-sizes {args.memory_sizes}`", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
