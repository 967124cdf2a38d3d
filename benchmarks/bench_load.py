"""Issue 8, "Load": a 10⁴-atom periodic structure, and a stream of 10⁴ small structures, on CPU.

1. ``--big``: energy + forces of a periodic water box of 12288 atoms (64 · 192, ~650k edges) with the
   benchmark model (128x0e+128x1o, float64) and ``model.chunk_size`` (edges per chunk under gradient
   checkpointing). Reports time, peak resident memory (VmHWM) and Σ_i F_i (zero for a periodic cell).
2. ``--stream``: ``--n-stream`` small molecules (ethanol, water, methanol, acetone with random
   displacements, 3 to 10 atoms) through :class:`minimace.calculator.MiniMACECalculator`, one at a time;
   the resident memory is sampled every 500 structures and must not grow after the warm-up.

    OMP_NUM_THREADS=2 .venv-mace/bin/python benchmarks/bench_load.py --big --stream
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def big(n_atoms: int, chunk_size: int, dtype_name: str) -> str:
    import torch

    from common import both_models, minimace_batch, peak_rss_gib, water

    dtype = getattr(torch, dtype_name)
    _, model = both_models(dtype)
    model.chunk_size = chunk_size
    atoms = water(n_atoms)
    t0 = time.perf_counter()
    batch = minimace_batch([atoms], dtype)
    t_graph = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = model(batch, compute_forces=True)
    t_eval = time.perf_counter() - t0
    net = out["forces"].sum(0).abs().max().item()
    line = (f"big: {n_atoms} atoms, {batch['edge_index'].shape[1]} edges, {dtype_name}, chunk_size {chunk_size}: "
            f"neighbour list {t_graph:.1f} s, energy + forces {t_eval:.1f} s, peak RSS {peak_rss_gib():.2f} GiB, "
            f"E = {out['energy'].item():.6f} eV, max |Σ F| = {net:.1e} eV/Å")
    print(line, flush=True)
    return line


def stream(n: int, dtype_name: str) -> str:
    import numpy as np
    from ase.build import molecule

    from common import both_models, current_rss_gib
    from minimace.calculator import MiniMACECalculator

    import torch

    _, model = both_models(getattr(torch, dtype_name))
    calc = MiniMACECalculator(model, dtype=dtype_name)
    rng = np.random.default_rng(0)
    templates = [molecule(name) for name in ("CH3CH2OH", "H2O", "CH3OH", "CH3COCH3", "CH4")]
    samples, t0 = [], time.perf_counter()
    for i in range(n):
        atoms = templates[i % len(templates)].copy()
        atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
        atoms.calc = calc
        atoms.get_forces()
        if i % 500 == 0 or i == n - 1:
            samples.append((i, current_rss_gib() * 1024))
    dt = time.perf_counter() - t0
    warm = [s for s in samples if s[0] >= n // 10]
    growth = warm[-1][1] - warm[0][1]
    line = (f"stream: {n} structures in {dt:.0f} s ({dt / n * 1e3:.1f} ms each), RSS after 10 % "
            f"{warm[0][1]:.0f} MiB, at the end {warm[-1][1]:.0f} MiB (growth {growth:+.1f} MiB); "
            f"samples {[(i, round(r)) for i, r in samples]}")
    print(line, flush=True)
    return line


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--big", action="store_true")
    p.add_argument("--n-atoms", type=int, default=12288)
    p.add_argument("--chunk-size", type=int, default=20000)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--n-stream", type=int, default=10000)
    p.add_argument("--dtype", default="float64")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results_load.md"))
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    lines = [f"### Load (issue 8) — {time.strftime('%Y-%m-%d %H:%M')}, {args.threads} threads", ""]
    if args.big:
        lines.append("- " + big(args.n_atoms, args.chunk_size, args.dtype))
    if args.stream:
        lines.append("- " + stream(args.n_stream, args.dtype))
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
