# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["remove-cell"]
# Colab only (does nothing elsewhere): install minimace and fetch the data of this lesson.
import sys
if "google.colab" in sys.modules:
    import subprocess
    packages = ["git+https://github.com/minimace/minimace"]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *packages], check=True)
    subprocess.run(["minimace", "download", "botnet_ethanol"], check=True)

# %% [markdown]
# # 04 — A linear ACE potential fitted on real DFT data
#
# **What you will learn**
# - the linear Atomic Cluster Expansion: $E = \sum_i \big(E^0_{z_i} + \sum_\eta c_{z_i,\eta} B_{i,\eta}\big)$ with
#   the invariant B-functions of notebook 03, a fixed radial basis and one large cutoff;
# - the choices of the published linear-ACE fits (Kovács et al. 2021, ACEpotentials.jl): body order 4 ($\nu = 3$),
#   a total-degree basis selection, a radial basis of polynomials in a transformed distance, a smoothness prior;
# - why energies **and** forces are linear in the coefficients, and how the force rows $-\partial B/\partial\mathbf r$
#   follow from the product rule;
# - a regularised least-squares fit with the regularisation chosen on a validation split, test errors, a parity
#   plot, and the full-size results next to the published linear ACE and MACE.
#
# **Prerequisites**: notebooks 01–03.
#
# **Paper**: Drautz, *Atomic cluster expansion*, PRB 99, 014104 (2019); Batatia et al., *MACE* (NeurIPS 2022,
# arXiv:2206.07697), Eqs. (7)–(10) — linear ACE is MACE with one layer, fixed radial functions and a linear readout;
# Kovács et al., *Linear atomic cluster expansion force fields for organic molecules*, JCTC 17, 7696 (2021).
# The choices and their measured effects: `docs/linear_ace.md`.

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import minimace
from minimace.ace import PUBLISHED_RECIPE, ACEBasis, LinearACE, design_matrix, mae_report
from minimace.data import DataError
from minimace.datasets import bundled, bundled_e0s, load_shared, shared_e0s
from minimace.graph import batch_graphs
from minimace.testing import BATCH_ATOMS, BATCH_KINDS, assert_equivariant, assert_model_equivariant, \
    permutation_within_graphs

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.manual_seed(0)
r_max = 5.0
# quick mode (CI): a small basis and few configurations; full mode: the published-fit recipe (`PUBLISHED_RECIPE`) and the
# rMD17 protocol (950 + 50 configurations)
SMALL = dict(n_max=5, l_max=3, max_degree=(5, 5, 4.5), radial="agnesi", r_0=None, l_weight=1.5)
BASIS = SMALL if QUICK else {k: v for k, v in PUBLISHED_RECIPE.items() if k != "r_max"}
N_TRAIN, N_VALID, N_TEST = (60, 10, 50) if QUICK else (950, 50, 1000)

# %% [markdown]
# ## 1. Data
#
# rMD17 ethanol (PBE/def2-SVP) when the shared data folder has it (`minimace download botnet_ethanol` fetches it):
# the first `N_TRAIN + N_VALID` configurations of `train.xyz` (training + validation), `test_MD.xyz` for testing,
# and isolated-atom energies $E^0_z$ at the same level of theory. Without it (a fresh clone), the ethanol frames of
# minimace's bundled GFN2-xTB set (600 K MD): the same molecule at another level of theory.

# %%
try:
    configs = load_shared("botnet_ethanol", "train", index=f":{N_TRAIN + N_VALID}")
    test_configs = load_shared("botnet_ethanol", "test", index=f":{N_TEST}")
    e0s, SOURCE = shared_e0s("botnet_ethanol"), "rMD17 ethanol (PBE/def2-SVP, shared data folder)"
except DataError as error:
    print("no shared data:", error)
    configs = [c for c in bundled("train") if c.config_type == "ethanol"][: N_TRAIN + N_VALID]
    test_configs = [c for c in bundled("test") if c.config_type == "ethanol"][:N_TEST]
    e0s, SOURCE = bundled_e0s(), "bundled GFN2-xTB ethanol (minimace/data)"
graphs = [c.to_graph(r_max) for c in configs]
train, valid = graphs[:N_TRAIN], graphs[N_TRAIN:]
test = [c.to_graph(r_max) for c in test_configs]
print(f"data: {SOURCE}")
print(f"train {len(train)}, valid {len(valid)}, test {len(test)};  E0s (eV): {e0s}")
assert len(train) == N_TRAIN and len(valid) == N_VALID and len(test) > 0

# %% [markdown]
# ## 2. The basis
#
# - one-particle basis $\phi_{nzlm}(\mathbf r_{ij}) = R_n^{z_i z_j}(r_{ij})\, Y_{lm}(\hat{\mathbf r}_{ij})\,
#   \delta_{z z_j}$, one channel per radial index $n$ **and** neighbour element $z$;
# - the radial functions are polynomials of a *transformed* distance. The Agnesi transform
#   $y(r) = 1/\big(1 + s^4/(1 + s^2)\big)$, $s = r/r_0$, with one $r_0$ per element pair (the bond length
#   $r_\text{cov}(z_i) + r_\text{cov}(z_j)$), is rescaled to $x \in [-1, 1]$ ($x(0) = 1$, $x(r_\text{max}) = -1$);
#   $R_n = \hat C_n(x)\,(1 - x^2)^2$ with orthonormal Gegenbauer polynomials $\hat C_n$ (weight $(1-x^2)^4$), so the
#   $R_n$ are orthonormal in $x$ and vanish smoothly at the cutoff. The transform spends resolution near bond
#   lengths, where the energy changes fastest;
# - atomic basis $A_{i,nzlm} = \sum_j \phi_{nzlm}$ (Eq. 8);
# - B-functions: products of $\nu$ components with labels $v_\xi = (n_\xi, z_\xi, l_\xi)$, coupled to an invariant with
#   `coupling_block`, kept when the total degree $\sum_\xi (n_\xi + 1 + l_\xi / w_L) \le D_\nu$ with $w_L = 1.5$
#   (angular detail is cheaper than radial detail). Unlike MACE, products mix channels.

# %%
basis = ACEBasis([1, 6, 8], r_max=r_max, **BASIS).double()
print("B-functions per correlation order nu:", basis.counts(), " total per element", basis.num_basis)
r = torch.linspace(0.6, r_max, 300, dtype=dtype)[:, None]
pairs = {"C–H": (1, 6), "C–C": (6, 6), "O–H": (1, 8)}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, (z1, z2) in pairs.items():
    r0 = basis.pair_r_0[basis.z_to_index[z1], basis.z_to_index[z2]]
    axes[0].plot(r[:, 0], basis.radial_functions(r, torch.full_like(r, r0))[:, 2], label=f"{name}: $r_0$ = {r0:.2f} Å")
R_ch = basis.radial_functions(r, torch.full_like(r, float(basis.pair_r_0[0, 1])))  # C–H pair, [300, n_max]
for n in range(min(4, basis.n_max)):
    axes[1].plot(r[:, 0], R_ch[:, n], label=f"n = {n}")
axes[0].set(xlabel="r (Å)", ylabel="$R_2(r)$", title="one radial function, three element pairs")
axes[1].set(xlabel="r (Å)", ylabel="$R_n(r)$", title="C–H radial functions")
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
batch = batch_graphs(train[:2])
B = basis(batch["positions"], batch["atomic_numbers"], batch["edge_index"], batch["shifts"])   # [18, n_basis]
print("B shape [n_atoms, n_basis]:", tuple(B.shape))
assert basis.counts()[1] == BASIS["max_degree"][0] * 3  # ν = 1: Σ_j R_n(r_ij) δ_{z z_j}, n + 1 <= D_1, two-body

# %% [markdown]
# *Line ↔ equation*: column 0 of `B` is the constant ($\nu = 0$), then the $\nu = 1, 2, 3$ B-functions of each atom.
# They are invariant under rotations, reflections, translations and permutations of the atoms:

# %%
features = lambda b: basis(b["positions"], b["atomic_numbers"], b["edge_index"], b["shifts"])
print(assert_equivariant(features, (batch,), (BATCH_KINDS,), "0e", atoms_in=(BATCH_ATOMS,), atoms_out="atoms",
                         permutation=permutation_within_graphs(batch["ptr"]), atol=1e-10))

# %% [markdown]
# ## 3. Energies and forces are linear in the coefficients
#
# With $X_{z\eta} = \sum_{i: z_i = z} B_{i\eta}$ (one row per configuration),
# $$E - \sum_i E^0_{z_i} = \sum_{z,\eta} c_{z\eta} X_{z\eta}, \qquad
# \mathbf F_a = -\nabla_{\mathbf r_a} E = \sum_{z,\eta} c_{z\eta}\,\big(-\nabla_{\mathbf r_a} X_{z\eta}\big).$$
# `design_matrix` returns $X$ and the force rows $J = -\partial X/\partial \mathbf r$ by the product rule:
# $\partial B_i/\partial \mathbf r_{ij} = \sum_\xi \sum_m (\partial B_i/\partial A_{i,v_\xi m})\,
# \partial\phi_{v_\xi m}(\mathbf r_{ij})/\partial\mathbf r_{ij}$ for each edge, which atom $j$ receives with a plus
# and atom $i$ with a minus sign. Check against finite differences:

# %%
X, J = design_matrix(basis, batch, forces=True)          # [2, 3 n_basis], [18, 3, 3 n_basis]
h, atom, alpha = 1e-5, 4, 2
shifted = [dict(batch, positions=batch["positions"] + s * h * torch.nn.functional.one_hot(
    torch.tensor(atom * 3 + alpha), 54).reshape(18, 3)) for s in (+1, -1)]
fd = -(design_matrix(basis, shifted[0], False)[0] - design_matrix(basis, shifted[1], False)[0]) / (2 * h)
print("X:", tuple(X.shape), " J:", tuple(J.shape), " |J - finite diff| =", (fd[0] - J[atom, alpha]).abs().max().item())
assert (fd[0] - J[atom, alpha]).abs().max() < 1e-6 * (1 + J[atom, alpha].abs().max())

# %% [markdown]
# ## 4. The fit: a smoothness prior, λ chosen on the validation split
#
# Rows: energies weighted by $w_E/\sqrt{N_\text{atoms}}$ ($w_E = 30$) and force components by $w_F = 1$. The
# penalty $\lambda \sum_\eta \gamma_\eta^2 c_\eta^2$ with the algebraic smoothness prior
# $\gamma_\eta = \sum_\xi \big((n_\xi + 1)^4 + (l_\xi/w_L)^4\big)$ penalises the rough, high-degree functions
# most. The normal equations $(G + \lambda\,\Gamma^2)\,c = b$ are accumulated batch by batch (never the whole
# design matrix), scaled to unit diagonal and solved by a Cholesky factorisation for every λ of a grid; the λ with
# the lowest validation loss is kept — the test set plays no part.

# %%
model = LinearACE([1, 6, 8], e0s=e0s, r_max=r_max, **BASIS).fit(train, valid, energy_weight=30.0, forces_weight=1.0)
info = model.fit_info
print(f"{info['num_features']} coefficients; design {info['design_seconds']:.1f} s, fit {info['total_seconds']:.1f} s "
      f"(wall); chosen λ = {info['lambda']:.0e}")
for lam, err in info["validation_errors"].items():
    if err is not None:
        print(f"  λ = {lam:.0e}   validation E RMSE {err['E_rmse_meV_per_sqrt_atom']:7.2f} meV/√atom   "
              f"F RMSE {err['F_rmse_meV_per_A']:7.2f} meV/Å")
assert min(info["validation_loss"].values()) == info["validation_loss"][info["lambda"]]

# %% [markdown]
# ## 5. Test errors and a parity plot

# %%
reports = {name: mae_report(model, g) for name, g in [("train", train), ("valid", valid), ("test", test)]}
for name, r in reports.items():
    print(f"{name:5s}  E MAE {r['energy_mae_meV']:7.2f} meV   ({r['energy_per_atom_mae_meV']:.3f} meV/atom)"
          f"   F MAE {r['forces_mae_meV_per_A']:7.2f} meV/Å   ({r['n_configs']} configs)")
ref = batch_graphs(test)
baseline_f = 1000 * ref["forces"].abs().mean().item()
print(f"for scale: mean |F| = {baseline_f:.0f} meV/Å")
assert reports["test"]["forces_mae_meV_per_A"] < 0.2 * baseline_f

# %%
pred = model.predict(test)
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
e_ref, e_pred = ref["energy"] - ref["energy"].mean(), pred["energy"] - ref["energy"].mean()
axes[0].scatter(e_ref, e_pred, s=6)
axes[0].set(xlabel="reference energy − mean (eV)", ylabel="linear ACE (eV)", title="test energies")
axes[1].scatter(ref["forces"].flatten(), pred["forces"].flatten(), s=2, alpha=0.4)
axes[1].set(xlabel="reference force component (eV/Å)", ylabel="linear ACE (eV/Å)", title="test forces")
for ax in axes:
    lims = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lims, lims, "k--", lw=0.8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. The fitted potential is a function of the positions: symmetry check
#
# `model(batch)` returns energies, per-atom energies and forces (by autograd). It must be invariant
# (energies) and equivariant (forces) under rotations, reflections, translations and permutations.
# `model.save(path)` writes it and `minimace.ace.ACECalculator(path)` runs it as an ASE calculator.

# %%
print(assert_model_equivariant(model, batch_graphs(test[:2]), atol=1e-9))

# %% [markdown]
# ## 7. The full-size fits next to the published numbers
#
# The rMD17 protocol (950 train + 50 validation; the default basis of the command for ethanol, one ν = 4 degree less
# for aspirin) is a command, not a notebook cell:
#
# ```
# python -m minimace.ace ethanol --json benchmarks/results_ace_ethanol.json
# python -m minimace.ace aspirin --max-degree 12 12 12 8 --json benchmarks/results_ace_aspirin.json
# ```
#
# The cell below shows the JSON files those commands wrote into the repository, next to the published linear ACE
# (Kovács et al. 2021) and MACE rows of the MACE paper's Table 1 (rMD17, 1000 training configurations).

# %%
PUBLISHED = {  # MACE paper (arXiv:2206.07697) Table 1, rMD17: (E MAE meV, F MAE meV/Å)
    ("ethanol", "linear ACE (Kovács et al. 2021)"): (1.2, 7.3), ("ethanol", "MACE"): (0.4, 2.1),
    ("aspirin", "linear ACE (Kovács et al. 2021)"): (6.1, 17.9), ("aspirin", "MACE"): (2.2, 6.6),
}
results_dir = Path(minimace.__file__).resolve().parents[1] / "benchmarks"
print(f"{'molecule':9s} {'model':46s} {'E MAE (meV)':>12s} {'F MAE (meV/Å)':>14s} {'coefficients':>13s}")
for molecule in ("ethanol", "aspirin"):
    path = results_dir / f"results_ace_{molecule}.json"
    if path.is_file():
        res = json.loads(path.read_text())
        degrees = ", ".join(f"{d:g}" for d in res["settings"]["max_degree"])
        print(f"{molecule:9s} {'minimace linear ACE, degrees (' + degrees + ')':46s} {res['test_E_MAE_meV']:12.2f} "
              f"{res['test_F_MAE_meV_per_A']:14.2f} {res['n_basis']:13d}")
    else:
        print(f"{molecule:9s} {'minimace linear ACE':46s}   (no {path.name}: run the command above)")
    for (mol, name), (e, f) in PUBLISHED.items():
        if mol == molecule:
            print(f"{'':9s} {name:46s} {e:12.1f} {f:14.1f}")

# %% [markdown]
# A linear ACE is a fixed-basis model: its error falls as the basis grows (more radial functions, higher degree
# and body order), at the price of a larger least-squares problem. MACE (notebooks 05+) learns the radial
# functions and mixes channels, and reaches lower errors with far fewer features.
