"""Speed of minimace versus mace-torch 0.3.16, same weights, side by side in one process.

Energy + forces on ethanol (9 atoms), 3BPA (27 atoms) and a 192-atom liquid-water box, and one training
step (batch of 10 ethanol configurations from botnet_ethanol, energy + force loss, backward, Adam step),
in float64 and float32, torch.set_num_threads(2). Both models are evaluated alternately; medians of
``--repeat`` runs after warm-up. Writes a markdown table (``--out``, default benchmarks/results_speed.md).

    OMP_NUM_THREADS=2 .venv-mace/bin/python benchmarks/bench_speed.py
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

from common import (HPARAMS, STRUCTURES, both_models, mace_batch, median_times, minimace_batch,  # noqa: E402
                    run_mace, run_ours)

from minimace.datasets import require  # noqa: E402


def agreement(mm, ours, batch, mb) -> tuple[float, float]:
    """(|ΔE| / |E|, max |ΔF|) between the two models."""
    ref, out = run_mace(mm, mb), run_ours(ours, batch)
    dE = float((ref["energy"] - out["energy"]).abs().max() / ref["energy"].abs().max())
    dF = float((ref["forces"] - out["forces"]).abs().max())
    return dE, dF


def train_steps(mm, ours, dtype):
    """Closures doing one training step each (batch of 10 ethanol configurations)."""
    import ase.io

    frames = ase.io.read(require("botnet_ethanol") / "botnet_ethanol" / "train.xyz", index=":10")
    batch = minimace_batch(frames, dtype)
    batch["energy"] = torch.tensor([a.get_potential_energy() for a in frames], dtype=dtype)
    batch["forces"] = torch.tensor(
        [f for a in frames for f in a.get_forces()], dtype=dtype
    )
    mb = mace_batch(batch, dtype)
    opt_m = torch.optim.Adam(mm.parameters(), lr=1e-4)
    opt_o = torch.optim.Adam(ours.parameters(), lr=1e-4)

    def loss(out):
        return ((out["energy"] - batch["energy"]) ** 2).mean() + 10.0 * ((out["forces"] - batch["forces"]) ** 2).mean()

    def step_mace():
        opt_m.zero_grad()
        loss(mm(mb, compute_force=True, training=True)).backward()
        opt_m.step()

    def step_ours():
        opt_o.zero_grad()
        loss(ours(batch, compute_forces=True, training=True)).backward()
        opt_o.step()

    return step_mace, step_ours


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="ethanol,3bpa,water192,train")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results_speed.md"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        mm, ours = both_models(dtype)
        for case in args.cases.split(","):
            if case == "train":
                step_mace, step_ours = train_steps(*both_models(dtype), dtype)  # fresh weights, not shared
                fns, n_atoms, n_edges, dE, dF = {"mace": step_mace, "ours": step_ours}, 90, None, None, None
            else:
                atoms = STRUCTURES[case]()
                batch = minimace_batch([atoms], dtype)
                mb = mace_batch(batch, dtype)
                dE, dF = agreement(mm, ours, batch, mb)
                fns = {"mace": lambda: run_mace(mm, mb), "ours": lambda: run_ours(ours, batch)}
                n_atoms, n_edges = len(atoms), batch["edge_index"].shape[1]
            repeat = max(3, args.repeat // 2) if case == "water192" else args.repeat
            t = median_times(fns, repeat=repeat, warmup=1 if case == "water192" else 2)
            row = dict(case=case, dtype=dtype_name, atoms=n_atoms, edges=n_edges, mace=t["mace"], ours=t["ours"],
                       ratio_wall=t["ours"][0] / t["mace"][0], ratio_cpu=t["ours"][1] / t["mace"][1], dE=dE, dF=dF)
            rows.append(row)
            print(f"{case:9s} {dtype_name}  mace {t['mace'][0] * 1e3:8.1f} ms  minimace {t['ours'][0] * 1e3:8.1f} ms  "
                  f"ratio wall {row['ratio_wall']:.2f}  cpu {row['ratio_cpu']:.2f}"
                  + (f"  |dE|/|E| {dE:.1e}  max|dF| {dF:.1e}" if dE is not None else ""), flush=True)
    write_table(rows, args)


def write_table(rows, args):
    lines = [
        f"### Speed (energy + forces; train = one optimiser step on 10 ethanol) — {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"{HPARAMS}; torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}; "
        f"medians of {args.repeat} interleaved runs (3 for water192).",
        "",
        "| case | dtype | atoms | edges | mace-torch wall | minimace wall | ratio (wall) | ratio (CPU time) "
        "| rel. ΔE | max ΔF (eV/Å) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        agree = f"{r['dE']:.0e} | {r['dF']:.0e}" if r["dE"] is not None else "– | –"
        lines.append(
            f"| {r['case']} | {r['dtype']} | {r['atoms']} | {r['edges'] or '–'} | {r['mace'][0] * 1e3:.0f} ms "
            f"| {r['ours'][0] * 1e3:.0f} ms | **{r['ratio_wall']:.2f}** | {r['ratio_cpu']:.2f} | {agree} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
