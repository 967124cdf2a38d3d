"""Cost of ``minimace.testing.verify`` with the default checks on a 64-atom periodic structure (target: ≤ 30 s on
one CPU core with a small model).

Structure: a 2×2×2 diamond silicon cell (64 atoms, 10.9 Å), rattled by verify. Model: a small MACE (2 layers,
32x0e+32x1o, max_ell 3, correlation 3, r_max 5 Å, random weights), through ``MiniMACECalculator``; where
mace-torch is installed (``.venv-mace``), the same weights also through mace-torch's ``MACECalculator``, side by
side in the same run. Reports CPU time (``time.process_time``: the machine may be shared) and wall time, the
total and per check, and the number of evaluations of the potential.

    OMP_NUM_THREADS=1 .venv-mace/bin/python benchmarks/bench_verify.py      # writes benchmarks/results_verify.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

HERE = Path(__file__).resolve().parent
SMALL = dict(r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3, correlation=3, num_interactions=2,
             hidden_irreps="32x0e+32x1o", MLP_irreps="16x0e", radial_MLP=[64, 64, 64], avg_num_neighbors=26.0,
             atomic_numbers=[14], atomic_energies=[-158.4])


def potentials(dtype_name: str):
    """(label, potential) pairs with the same weights: minimace, and mace-torch when it is installed."""
    from minimace import MACE

    dtype = getattr(torch, dtype_name)
    try:
        import mace  # noqa: F401  (before e3nn.o3)
    except ImportError:
        torch.manual_seed(0)
        return [("minimace MACE", MACE(**SMALL).to(dtype))]
    from e3nn import o3
    from mace.calculators import MACECalculator
    from mace.modules import MACE as MaceMACE
    from mace.modules import RealAgnosticInteractionBlock, RealAgnosticResidualInteractionBlock

    from minimace.interop import from_mace_torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        mm = MaceMACE(r_max=SMALL["r_max"], num_bessel=8, num_polynomial_cutoff=5, max_ell=SMALL["max_ell"],
                      interaction_cls=RealAgnosticResidualInteractionBlock,
                      interaction_cls_first=RealAgnosticInteractionBlock, num_interactions=2, num_elements=1,
                      hidden_irreps=o3.Irreps(SMALL["hidden_irreps"]), MLP_irreps=o3.Irreps("16x0e"),
                      atomic_energies=np.array(SMALL["atomic_energies"]), avg_num_neighbors=26.0,
                      atomic_numbers=[14], correlation=3, gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64])
    finally:
        torch.set_default_dtype(old)
    mm = mm.to(dtype)
    ours = from_mace_torch(mm).to(dtype)
    return [("minimace MACE", ours),
            ("mace-torch MACECalculator", MACECalculator(models=mm, device="cpu", default_dtype=dtype_name))]


def run(dtype_name: str) -> list[dict]:
    from minimace.testing import verify

    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    rows = []
    for label, potential in potentials(dtype_name):
        verify(potential, atoms, checks=["rotation"], dtype=dtype_name)  # warm-up (first-call costs)
        wall, cpu = time.perf_counter(), time.process_time()
        report = verify(potential, atoms, dtype=dtype_name)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(report)
        print(f"{label} {dtype_name}: CPU {cpu:.1f} s, wall {wall:.1f} s\n")
        rows.append(dict(label=label, dtype=dtype_name, cpu=cpu, wall=wall, report=report))
    return rows


def markdown(rows: list[dict], command: str) -> str:
    lines = ["# Cost of `minimace verify` (default checks, 64-atom periodic silicon, small MACE)", "",
             f"Command: `{command}` (torch {torch.__version__}, {platform.processor() or platform.machine()}, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads {torch.get_num_threads()}).",
             "CPU time is `time.process_time()` of the whole `verify` call (the machine may have been shared: the "
             "wall time includes waiting); target ≤ 30 s.", "",
             "| potential | dtype | checks passed | evaluations | CPU time (s) | wall time (s) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        rep = r["report"]
        n_eval = 1 + sum(c.evaluations for c in rep)
        lines.append(f"| {r['label']} | {r['dtype']} | {sum(c.passed for c in rep)}/{len(rep.results)} | {n_eval} "
                     f"| {r['cpu']:.1f} | {r['wall']:.1f} |")
    lines += ["", "CPU seconds per check:", "",
              "| potential | dtype | " + " | ".join(rows[0]["report"].results) + " |",
              "|---|---|" + "---|" * len(rows[0]["report"].results)]
    for r in rows:
        lines.append(f"| {r['label']} | {r['dtype']} | "
                     + " | ".join(f"{c.seconds:.2f}" for c in r["report"]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--out", default=str(HERE / "results_verify.md"))
    args = parser.parse_args()
    rows = [row for name in args.dtypes.split(",") for row in run(name)]
    command = "OMP_NUM_THREADS=1 .venv-mace/bin/python benchmarks/bench_verify.py"
    Path(args.out).write_text(markdown(rows, command))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
