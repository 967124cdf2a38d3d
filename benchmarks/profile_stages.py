"""Where the time goes, stage by stage: torch.profiler on energy + forces (forward and backward).

Usage (mace-torch environment):
    OMP_NUM_THREADS=2 .venv-mace/bin/python benchmarks/profile_stages.py --structure water192 --dtype float64

Every stage module of minimace (and the matching mace-torch blocks) is wrapped in
``torch.profiler.record_function`` so that the profiler reports its forward time; the backward pass
(forces) is reported as one total, and ``--ops`` prints the hottest operators (forward and backward).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

from common import STRUCTURES, both_models, mace_batch, minimace_batch, run_mace, run_ours, water  # noqa: E402

OURS = {
    "edge_embedding": "Y, radial features", "atomic_bases.[0-9].radial_mlp": "radial MLP",
    "atomic_bases.[0-9].linear_up": "linear_up", "atomic_bases.[0-9].conv_tp": "conv TP + sum over neighbours",
    "atomic_bases.[0-9].linear": "A linear", "atomic_bases.[0-9].element_linear": "element linear (W_z)",
    "messages.[0-9]": "symmetric contraction", "updates.[0-9]": "update", "readouts.[0-9]": "readout",
}
THEIRS = {
    "spherical_harmonics": "Y, radial features", "radial_embedding": "Y, radial features",
    "interactions.[0-9].conv_tp_weights": "radial MLP", "interactions.[0-9].linear_up": "linear_up",
    "interactions.[0-9].conv_tp": "conv TP + sum over neighbours", "interactions.[0-9].linear": "A linear",
    "interactions.[0-9].skip_tp": "element linear (W_z)", "products.[0-9].symmetric_contractions": "symmetric contraction",
    "products.[0-9].linear": "update", "readouts.[0-9]": "readout",
}


def wrap(model, table):
    """Wrap the forward of every submodule matching a pattern of ``table`` in a record_function."""
    import fnmatch

    for name, mod in model.named_modules():
        for pattern, label in table.items():
            if fnmatch.fnmatch(name, pattern) or name == pattern:
                method = "neighbour_sum" if hasattr(mod, "neighbour_sum") and hasattr(mod, "paths") else "forward"
                setattr(mod, method, _recorded(getattr(mod, method), label))


def _recorded(f, label):
    @functools.wraps(f)
    def g(*a, **k):
        with torch.profiler.record_function("stage::" + label):
            return f(*a, **k)

    return g


def profile(fn, n=3):
    fn()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            fn()
    return prof


def stage_table(prof, n):
    """Forward time (ms per call) of each stage: CPU time of its record_function ranges."""
    fwd = {}
    for e in prof.events():
        if e.name.startswith("stage::"):
            fwd[e.name[7:]] = fwd.get(e.name[7:], 0.0) + e.cpu_time_total / 1e3 / n
    return fwd


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--structure", default="water192", choices=list(STRUCTURES) + ["water1536"])
    p.add_argument("--dtype", default="float64")
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--ops", action="store_true", help="print the hottest operators too")
    p.add_argument("--only", choices=["ours", "mace"], default=None)
    args = p.parse_args()
    torch.set_num_threads(2)
    dtype = getattr(torch, args.dtype)
    mm, ours = both_models(dtype)
    atoms = water(1536) if args.structure == "water1536" else STRUCTURES[args.structure]()
    batch = minimace_batch([atoms], dtype)
    mb = mace_batch(batch, dtype)
    print(f"{args.structure}: {len(atoms)} atoms, {batch['edge_index'].shape[1]} edges, {args.dtype}")
    wrap(ours, OURS)
    wrap(mm, THEIRS)
    for name, fn in (("minimace", lambda: run_ours(ours, batch)), ("mace-torch", lambda: run_mace(mm, mb))):
        if args.only and {"ours": "minimace", "mace": "mace-torch"}[args.only] != name:
            continue
        prof = profile(fn, args.n)
        total = sum(e.cpu_time_total for e in prof.events() if e.cpu_parent is None) / 1e3 / args.n
        fwd = stage_table(prof, args.n)
        backward = sum(e.cpu_time_total for e in prof.events()
                       if e.name.startswith("autograd::engine::evaluate_function")) / 1e3 / args.n
        print(f"\n== {name}: total {total:.0f} ms per call; backward (forces) {backward:.0f} ms; forward by stage (ms):")
        for k, v in sorted(fwd.items(), key=lambda kv: -kv[1]):
            print(f"  {k:32s} {v:9.1f}  ({100 * v / total:4.1f} %)")
        if args.ops:
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
