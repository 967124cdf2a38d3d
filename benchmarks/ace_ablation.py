"""Which choices of the linear-ACE recipe matter: an ablation on rMD17 (950 train + 50 validation configurations).

One design (the recipe basis of ``minimace.ace.RECIPE``) is assembled once: the normal equations of the training
set, the validation rows and the test rows. Every variant that keeps that basis is then a different solve
(another prior, other weights) or a subset of its columns (a lower body order, a smaller total degree), so the
table costs one design plus a few Cholesky factorisations per row. ``--designs`` adds rows that need a basis
of their own (the radial basis of MACE, one transform scale for all element pairs), at the cost of one more
design each. For every row the regularisation strength λ is chosen on the validation set, never on the test set.

    OMP_NUM_THREADS=1 python benchmarks/ace_ablation.py ethanol --basis small --n-test 500 --designs bessel \\
        --out benchmarks/results_ace_ablation_ethanol.json

writes the JSON and a markdown table (same name, ``.md``), the one quoted in docs/linear_ace.md.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from minimace.ace import FIT, RECIPE, LinearACE, design_matrix, load_protocol, peak_rss_gib
from minimace.graph import batch_graphs

GRID = [float(x) for x in 10.0 ** np.arange(-12.0, -1.0)]  # the default grid of LinearACE.solve
SMALL = dict(RECIPE, n_max=10, l_max=4, max_degree=(10, 9, 8))  # 4629 coefficients for H, C, O: a cheaper table


def test_rows(model: LinearACE, graphs, batch_size=50) -> dict:
    """Unweighted test design matrix: energy rows, their targets E − ΣE0, force rows and forces."""
    parts = {"XE": [], "yE": [], "XF": [], "yF": []}
    for start in range(0, len(graphs), batch_size):
        batch = batch_graphs(graphs[start : start + batch_size])
        X, J = design_matrix(model.basis, batch, forces=True)
        parts["XE"].append(X)
        parts["yE"].append(batch["energy"] - model._e0(batch))
        parts["XF"].append(J.reshape(-1, X.shape[1]))
        parts["yF"].append(batch["forces"].reshape(-1))
    return {k: torch.cat(v) for k, v in parts.items()}


def test_errors(c: torch.Tensor, test: dict) -> dict:
    dE, dF = test["XE"] @ c - test["yE"], test["XF"] @ c - test["yF"]
    return {"E_MAE_meV": 1000 * float(dE.abs().mean()), "F_MAE_meV_per_A": 1000 * float(dF.abs().mean()),
            "E_RMSE_meV": 1000 * float(dE.pow(2).mean().sqrt()), "F_RMSE_meV_per_A": 1000 * float(dF.pow(2).mean().sqrt())}


def error_table(rows, label: str) -> list[str]:
    """Markdown lines of a table: ``row[label]``, size, chosen λ and the four test errors of every row."""
    lines = [f"| {label} | n_basis | λ | test E MAE (meV) | test F MAE (meV/Å) | test E RMSE (meV) | test F RMSE (meV/Å) |",
             "|---|---|---|---|---|---|---|"]
    return lines + [f"| {r[label]} | {r['n_basis']} | {r['lambda']:.0e} | {r['E_MAE_meV']:.2f} | "
                    f"{r['F_MAE_meV_per_A']:.2f} | {r['E_RMSE_meV']:.2f} | {r['F_RMSE_meV_per_A']:.2f} |" for r in rows]


def subset(data: dict, mask: torch.Tensor) -> dict:
    """The normal equations / rows of the columns in ``mask``."""
    out = {}
    for key, value in data.items():
        if key.startswith("G"):
            out[key] = value[mask][:, mask]
        elif key.startswith("b"):
            out[key] = value[mask]
        elif key.startswith("X"):
            out[key] = value[:, mask]
        else:
            out[key] = value
    return out


class Design:
    """One basis assembled once: training normal equations, validation and test rows."""

    def __init__(self, elements, e0s, train, valid, test, **basis):
        start, cpu = time.perf_counter(), time.process_time()
        self.model = LinearACE(elements, e0s=e0s, **basis)
        self.normal = self.model.normal_equations(train)
        self.valid = self.model.validation_rows(valid)
        self.test = test_rows(self.model, test)
        self.seconds, self.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        orders, degrees = self.model.basis.column_orders_and_degrees()
        n_el = len(elements)
        self.orders, self.degrees = orders.repeat(n_el), degrees.repeat(n_el)  # [n_feat], element-major columns

    def solve(self, mask=None, lambdas=GRID, **settings):
        """λ chosen on the validation rows; test errors of that λ (and of every λ). A column subset is a sub-basis."""
        fit = {**FIT, **settings}
        mask = torch.ones(len(self.orders), dtype=torch.bool) if mask is None else mask
        start = time.process_time()
        c, info = self.model.solve(subset(self.normal, mask), subset(self.valid, mask), lambdas=lambdas,
                                   columns=mask, return_all=True,
                                   **{k: fit[k] for k in ("energy_weight", "forces_weight", "prior", "prior_p")})
        scan = {}
        for lam, solution in info["solutions"].items():
            if solution is not None:
                full = torch.zeros(len(mask), dtype=torch.float64)
                full[mask] = solution
                scan[lam] = {**test_errors(full, self.test), **info["validation_errors"][lam]}
        return {"n_basis": int(mask.sum()), "lambda": info["lambda"], **scan[info["lambda"]],
                "solve_cpu_seconds": time.process_time() - start, "scan": scan}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=["ethanol", "aspirin"])
    parser.add_argument("--n-train", type=int, default=950)
    parser.add_argument("--n-valid", type=int, default=50)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--designs", nargs="*", default=[], choices=["bessel", "one_r0"],
                        help="extra rows with a basis of their own (one more design each)")
    parser.add_argument("--basis", choices=["recipe", "small"], default="recipe",
                        help="the recipe basis of minimace.ace.RECIPE, or a smaller one (SMALL) for a cheaper table")
    parser.add_argument("--out", required=True, help="JSON file; the markdown table goes next to it (.md)")
    args = parser.parse_args(argv)
    start, cpu = time.perf_counter(), time.process_time()
    train, valid, test, e0s, elements = load_protocol(args.name, args.n_train, args.n_valid, args.n_test, r_max=RECIPE["r_max"])
    rows = []
    base = RECIPE if args.basis == "recipe" else SMALL
    recipe = Design(elements, e0s, train, valid, test, **base)
    print(f"design: {recipe.seconds:.0f} s wall, {recipe.cpu_seconds:.0f} s CPU", flush=True)

    def add(label, design, **kwargs):
        row = {"variant": label, **design.solve(**kwargs)}
        if rows:
            row.pop("scan")
        rows.append(row)
        print(json.dumps(row), flush=True)

    add(f"recipe ({args.basis} basis): ν = 3, total degree (w_L = 1.5), Agnesi radial basis with r_0 per pair, "
        "smoothness prior p = 4, w_E = 30", recipe)
    add("ridge prior (unit-normalised columns) instead of the smoothness prior", recipe, prior="ridge")
    add("smoothness prior p = 2", recipe, prior_p=2.0)
    add("energy weight w_E = 1", recipe, energy_weight=1.0)
    add("energy weight w_E = 100", recipe, energy_weight=100.0)
    add("body order 3 (ν ≤ 2)", recipe, mask=recipe.orders <= 2)
    top = base["max_degree"][2]
    add(f"ν = 3 total degree ≤ {top - 2:g} instead of {top:g}", recipe,
        mask=(recipe.orders < 3) | (recipe.degrees <= top - 2 + 1e-9))
    # the λ scan of the recipe: validation errors (which choose) next to the test errors (which do not)
    scan = [{"lambda": lam, **row} for lam, row in rows[0]["scan"].items()]
    extra = {"bessel": dict(base, radial="bessel", r_0=1.0), "one_r0": dict(base, r_0=1.0)}
    labels = {"bessel": "Bessel × polynomial envelope radial basis (MACE's), same selection",
              "one_r0": "one Agnesi scale r_0 = 1 Å for every element pair"}
    rows[0].pop("scan")
    del recipe  # free its matrices before the next design
    for name in args.designs:
        add(labels[name], Design(elements, e0s, train, valid, test, **extra[name]))
    result = {"name": args.name, "n_train": len(train), "n_valid": len(valid), "n_test": len(test),
              "basis": args.basis, "basis_settings": base, "fit": FIT, "lambdas": GRID, "rows": rows,
              "lambda_scan": scan, "wall_seconds": time.perf_counter() - start,
              "cpu_seconds": time.process_time() - cpu, "peak_rss_GiB": peak_rss_gib(),
              "torch_threads": torch.get_num_threads()}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    lines = [f"Linear ACE ablation, rMD17 {args.name}: {len(train)} train + {len(valid)} validation, "
             f"{len(test)} test configurations; λ chosen on the validation set for every row.", ""]
    lines += error_table(rows, "variant")
    lines += ["", "λ scan of the recipe (test errors shown for information only; the choice uses validation):", "",
              "| λ | validation E RMSE (meV/√atom) | validation F RMSE (meV/Å) | test E MAE (meV) | test F MAE (meV/Å) |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['lambda']:.0e} | {r['E_rmse_meV_per_sqrt_atom']:.2f} | {r['F_rmse_meV_per_A']:.2f} | "
              f"{r['E_MAE_meV']:.2f} | {r['F_MAE_meV_per_A']:.2f} |" for r in scan]
    lines += ["", f"{result['wall_seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU, peak RSS "
              f"{result['peak_rss_GiB']:.1f} GiB, {result['torch_threads']} threads (shared, loaded machine)."]
    with open(args.out.rsplit(".", 1)[0] + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
