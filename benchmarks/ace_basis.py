"""The basis scan behind the defaults of ``python -m minimace.ace``: one full fit per setting, one table.

Each row is one run of the command (rMD17, 950 train + 50 validation configurations, the full test set, λ chosen on
the validation set), its JSON kept in ``benchmarks/results_ace_basis/``; the table is written from those files.

    OMP_NUM_THREADS=1 python benchmarks/ace_basis.py ethanol              # every setting not yet run, then the table
    OMP_NUM_THREADS=1 python benchmarks/ace_basis.py ethanol --only d12_nu4_8
    python benchmarks/ace_basis.py ethanol --table                         # the table from the JSON files alone

The table (``benchmarks/results_ace_basis_ethanol.md``) is the one quoted in docs/linear_ace.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results_ace_basis"
LAMBDAS = ["1e-11", "1e-10", "1e-9", "1e-8", "1e-7", "1e-6"]
# name -> (what changes from the first defaults, extra arguments of `python -m minimace.ace`)
SETTINGS = {
    "d11": ("degrees (12, 12, 11): the defaults before this scan", ["--max-degree", "12", "12", "11"]),
    "d11_rmax4": ("the same, cutoff 4 Å", ["--max-degree", "12", "12", "11", "--r-max", "4.0"]),
    "d11_agnesi": ("the same, Agnesi radial basis (r_0 per element pair), w_L = 1",
                   ["--max-degree", "12", "12", "11", "--radial", "agnesi"]),
    "d11_nu4_8": ("degrees (12, 12, 11, 8): body order 5", ["--max-degree", "12", "12", "11", "8"]),
    "d12": ("degrees (12, 12, 12)", ["--max-degree", "12", "12", "12"]),
    "d12_nu4_8": ("degrees (12, 12, 12, 8)", ["--max-degree", "12", "12", "12", "8"]),
    "d12_nu4_9": ("degrees (12, 12, 12, 9)", ["--max-degree", "12", "12", "12", "9"]),
    "d12_nu4_9_we10": ("degrees (12, 12, 12, 9), energy weight w_E = 10",
                       ["--max-degree", "12", "12", "12", "9", "--energy-weight", "10"]),
    "d13": ("degrees (12, 12, 13)", ["--max-degree", "12", "12", "13"]),
}


def run(name: str, molecule: str, key: str) -> Path:
    """One fit by the command line, in a fresh process (its own peak memory); returns its JSON file."""
    path = OUT / f"{molecule}_{key}.json"
    cmd = [sys.executable, "-m", "minimace.ace", molecule, *SETTINGS[key][1], "--lambdas", *LAMBDAS,
           "--json", str(path)]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=HERE.parent, env=os.environ.copy())
    return path


def table(molecule: str) -> list[str]:
    """Markdown rows from the JSON files of the molecule, in the order of SETTINGS."""
    lines = ["| setting | coefficients (ν = 1, 2, 3, 4 per element) | λ (grid) | test E MAE (meV) | test F MAE (meV/Å) "
             "| test E RMSE (meV) | test F RMSE (meV/Å) | validation E / F MAE | fit (s wall) | threads | peak RSS (GiB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, (label, _) in SETTINGS.items():
        path = OUT / f"{molecule}_{key}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        counts = ", ".join(str(v) for k, v in sorted(r["counts"].items(), key=lambda kv: int(kv[0])) if k != "0")
        grid = r["settings"]["lambdas"]
        lines.append(f"| {label} | {r['n_basis']} ({counts}) | {r['lambda']:.0e} ({min(grid):.0e}–{max(grid):.0e}) "
                     f"| {r['test_E_MAE_meV']:.2f} "
                     f"| {r['test_F_MAE_meV_per_A']:.2f} | {r['test_E_RMSE_meV']:.2f} "
                     f"| {r['test_F_RMSE_meV_per_A']:.2f} "
                     f"| {r['valid']['energy_mae_meV']:.2f} / {r['valid']['forces_mae_meV_per_A']:.2f} "
                     f"| {r['fit_seconds']:.0f} | {r['torch_threads']} "
                     f"| {r['peak_rss_GiB']:.1f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("molecule", choices=["ethanol", "aspirin"])
    parser.add_argument("--only", nargs="+", choices=sorted(SETTINGS), help="run these settings (again)")
    parser.add_argument("--table", action="store_true", help="only write the table from the JSON files")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    if not args.table:
        for key in args.only or [k for k in SETTINGS if not (OUT / f"{args.molecule}_{k}.json").is_file()]:
            run(key, args.molecule, key)
    lines = [f"Linear ACE on rMD17 {args.molecule}: 950 train + 50 validation configurations, the full test set; "
             "Bessel radial basis n_max 12, l ≤ 4, ridge prior, w_E = 30, λ on the validation set unless the "
             "row says otherwise; one `python -m minimace.ace` run per row (`benchmarks/ace_basis.py`, JSON files "
             "in `benchmarks/results_ace_basis/`). Fit times are those of the run (threads as stated, on a "
             "2-core machine shared with the other runs of the scan); the rows before the force-row and one-matrix "
             "changes of 2026-12-03 took longer and held two normal matrices.", ""]
    lines += table(args.molecule)
    (HERE / f"results_ace_basis_{args.molecule}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
