"""Which total degrees matter: one large linear-ACE design on rMD17, then sub-bases by a degree bound per order.

The normal equations of a superset basis (Bessel radial basis, n_max 16, l_max 4, total degrees (16, 15, 11) for
ν = 1, 2, 3: 15216 coefficients for H, C, O) are assembled once; each row of the table keeps the B-functions of
order ν with total degree Σ_ξ (n_ξ + 1 + l_ξ) <= D_ν and solves again, λ chosen on the validation set.

    OMP_NUM_THREADS=1 python benchmarks/ace_degrees.py ethanol --n-test 500 --out benchmarks/results_ace_degrees_ethanol.json

writes the JSON and a markdown table next to it (.md), the one quoted in docs/linear_ace.md.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ace_ablation import Design, error_table
from minimace.ace import load_protocol, peak_rss_gib

SUPERSET = dict(r_max=5.0, n_max=16, l_max=4, max_degree=(16, 15, 11), radial="bessel", r_0=1.0)
BOUNDS = [(8, 12, 10), (16, 15, 11), (16, 12, 10), (16, 15, 10), (16, 14, 11)]  # (D_1, D_2, D_3) of each row
LAMBDAS = [float(x) for x in 10.0 ** np.arange(-14.0, -4.0)]


def mask_of(design: Design, bounds) -> torch.Tensor:
    """Columns of order ν with total degree <= bounds[ν - 1] (and the constants)."""
    keep = design.orders == 0
    for nu, bound in enumerate(bounds, start=1):
        keep |= (design.orders == nu) & (design.degrees <= bound + 1e-9)
    return keep


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=["ethanol", "aspirin"])
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    start, cpu = time.perf_counter(), time.process_time()
    train, valid, test, e0s, elements = load_protocol(args.name, 950, 50, args.n_test, r_max=SUPERSET["r_max"])
    design = Design(elements, e0s, train, valid, test, **SUPERSET)
    rows = []
    for bounds in BOUNDS:
        row = design.solve(mask=mask_of(design, bounds), lambdas=LAMBDAS, prior="ridge")
        row.pop("scan")
        rows.append({"degrees": list(bounds), **row})
        print(json.dumps(rows[-1]), flush=True)
    result = {"name": args.name, "n_test": len(test), "superset": SUPERSET, "rows": rows,
              "wall_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
              "peak_rss_GiB": peak_rss_gib(), "torch_threads": torch.get_num_threads()}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    lines = [f"Linear ACE, rMD17 {args.name}: 950 train + 50 validation, {len(test)} test configurations; one "
             f"superset design ({SUPERSET}), sub-bases by total degree per order; ridge prior, λ on validation.", ""]
    lines += error_table([{**r, "D_1, D_2, D_3": tuple(r["degrees"])} for r in rows], "D_1, D_2, D_3")
    lines += ["", f"{result['wall_seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU, peak RSS "
              f"{result['peak_rss_GiB']:.1f} GiB, {result['torch_threads']} thread(s)."]
    with open(args.out.rsplit(".", 1)[0] + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
