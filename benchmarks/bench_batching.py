"""Fixed batches vs an edge budget (``--max-edges-per-batch``) on a mixed-size set: memory and throughput.

The set: molecules of the bundled GFN2-xTB data (3–9 atoms) and periodic water boxes of 24 to 192 atoms (the
bundled 24-atom boxes repeated), ``--molecules`` and ``--boxes`` of them. One training epoch (energy + forces
loss, backward, Adam step; the batches of ``minimace.train.epoch_batches``) with ``--batch-size`` structures per
batch, then with an edge budget equal to the mean number of edges of those batches (the same number of steps
on average). A batch of B random structures holds anything from B molecules to B boxes; the budget bounds it.
Each mode runs in a fresh process, so that its peak resident memory (VmHWM) is its own; on a GPU the peak of
``torch.cuda.max_memory_allocated`` is reported too (``benchmarks/gpu_check.sh`` runs :func:`compare` there).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_batching.py            # writes results_batching.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
R_MAX = 4.5


def mixed_set(n_molecules: int = 200, n_boxes: int = 40, seed: int = 0) -> list:
    """Shuffled molecules and water boxes of 24, 48, 96 and 192 atoms (labels repeated with the cell)."""
    from minimace.data import Configuration, read_configurations
    from minimace.datasets import bundled_dir

    molecules = read_configurations(bundled_dir() / "train.xyz", index=f":{n_molecules}")
    base = read_configurations(bundled_dir() / "water_box.xyz")
    repeats = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2)]
    boxes = []
    for k in range(n_boxes):
        atoms = base[k % len(base)].to_atoms().repeat(repeats[k % len(repeats)])
        atoms.info["energy"] *= int(np.prod(repeats[k % len(repeats)]))
        boxes.append(Configuration.from_atoms(atoms, source=f"water box {k}"))
    configs = molecules + boxes
    order = np.random.default_rng(seed).permutation(len(configs))
    return [configs[k] for k in order]


def _epoch(model, graphs, batches, device, dtype) -> float:
    """One training epoch over ``batches`` (lists of indices); returns its wall time (s)."""
    from minimace.graph import batch_graphs, to_device
    from minimace.train import loss_terms, weighted_loss

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for chunk in batches:
        batch = to_device(batch_graphs([graphs[k] for k in chunk]), device, dtype)
        opt.zero_grad(set_to_none=True)
        pred = model(batch, compute_forces=True, training=True)
        weighted_loss(loss_terms(pred, batch), {"energy": 1.0, "forces": 100.0}).backward()
        opt.step()
    sync()
    return time.perf_counter() - t0


def run_mode(configs, mode: str, device, dtype_name: str, hidden: str, batch_size: int, epochs: int = 1,
             budget: int | None = None) -> dict:
    """Train ``epochs`` epochs with fixed batches (``mode="fixed"``) or an edge budget; statistics of the run."""
    sys.path.insert(0, str(HERE))
    from common_minimace import minimace_model, proc_status_gib

    from minimace.data import num_edges
    from minimace.train import TrainConfig, epoch_batches

    dtype = getattr(torch, dtype_name)
    graphs = [c.to_graph(R_MAX, dtype) for c in configs]
    n_edges = num_edges(graphs)
    budget = budget or int(batch_size * n_edges.mean())
    config = TrainConfig(batch_size=batch_size, max_edges_per_batch=None if mode == "fixed" else budget)
    model = minimace_model(dtype, hidden, max_ell=2, correlation=2, radial_MLP=[32]).to(device)
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    rss_before = proc_status_gib("VmRSS")
    steps, seconds, per_batch = 0, 0.0, []
    for epoch in range(epochs):
        batches = epoch_batches(config, n_edges, epoch)
        seconds += _epoch(model, graphs, batches, device, dtype)
        steps += len(batches)
        per_batch += [int(n_edges[b].sum()) for b in batches]
    peak_gpu = (f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if str(device).startswith("cuda")
                else "n/a (cpu)")
    return {"mode": "fixed batch of %d" % batch_size if mode == "fixed" else f"edge budget {budget}",
            "steps": steps, "seconds": seconds, "structures_per_s": epochs * len(graphs) / seconds,
            "max_edges": max(per_batch), "mean_edges": float(np.mean(per_batch)), "std_edges": float(np.std(per_batch)),
            "largest_structure": int(n_edges.max()),
            "peak_gpu": peak_gpu, "rss_before_gib": rss_before, "peak_rss_gib": proc_status_gib("VmHWM")}


def compare(configs, device, dtype_name: str = "float32", hidden: str = "32x0e+32x1o", batch_size: int = 8,
            epochs: int = 1) -> list[dict]:
    """Both modes in this process (GPU peaks are per mode; CPU peaks are not: see the processes of ``main``)."""
    return [run_mode(configs, mode, device, dtype_name, hidden, batch_size, epochs) for mode in ("fixed", "edges")]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--molecules", type=int, default=200)
    p.add_argument("--boxes", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--hidden", default="32x0e+32x1o")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(HERE / "results_batching.md"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        configs = mixed_set(args.molecules, args.boxes)
        print("RESULT " + json.dumps(run_mode(configs, args.worker, args.device, args.dtype, args.hidden,
                                              args.batch_size, args.epochs)))
        return
    rows = []
    for mode in ("fixed", "edges"):
        cmd = [sys.executable, __file__, "--worker", mode] + [a for a in sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            raise SystemExit(out.stderr[-2000:])
        rows.append(json.loads(line[0][7:]))
        print(rows[-1], flush=True)
    n = args.molecules + args.boxes
    lines = [
        "# Fixed batches vs an edge budget (`benchmarks/bench_batching.py`)", "",
        f"{args.molecules} molecules (3–9 atoms) and {args.boxes} water boxes (24–192 atoms), shuffled; "
        f"{args.epochs} training epoch(s) (E + F loss, backward, Adam) of a MACE with hidden {args.hidden}, max_ell 2, "
        f"correlation 2, r_max {R_MAX} Å, {args.dtype}, device {args.device}, {args.threads} thread(s). "
        "Each mode in a fresh process; the budget is the mean number of edges of the fixed batches.", "",
        "| batches | steps | edges per batch: max / mean / std | structures/s | peak RSS (GiB) | RSS growth in the "
        "epochs (GiB) | peak GPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['steps']} | {r['max_edges']} / {r['mean_edges']:.0f} / {r['std_edges']:.0f} | "
                     f"{r['structures_per_s']:.1f} | {r['peak_rss_gib']:.2f} | "
                     f"{r['peak_rss_gib'] - r['rss_before_gib']:.2f} | {r['peak_gpu']} |")
    lines += ["", f"Ratios edge budget / fixed: peak RSS growth "
              f"{(rows[1]['peak_rss_gib'] - rows[1]['rss_before_gib']) / max(rows[0]['peak_rss_gib'] - rows[0]['rss_before_gib'], 1e-9):.2f}, "
              f"largest batch {rows[1]['max_edges'] / rows[0]['max_edges']:.2f}, "
              f"throughput {rows[1]['structures_per_s'] / rows[0]['structures_per_s']:.2f} ({n} structures per epoch).",
              f"A structure with more edges than the budget is a batch of its own (the largest has "
              f"{rows[1]['largest_structure']} edges).",
              "", "Reproduce: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_batching.py "
              + " ".join(sys.argv[1:]) + "`", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
