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
# - full ACE products (mixing radial channels and neighbour elements) selected by a total degree;
# - why energies **and** forces are linear in the coefficients, and how the force rows $-\partial B/\partial\mathbf r$
#   come from forward-mode automatic differentiation;
# - a ridge least-squares fit with the regularisation chosen on a validation split, test errors and a parity plot
#   on rMD17 ethanol (PBE/def2-SVP).
#
# **Prerequisites**: notebooks 01–03.
#
# **Paper**: Drautz, *Atomic cluster expansion*, PRB 99, 014104 (2019); Batatia et al., *MACE* (NeurIPS 2022,
# arXiv:2206.07697), Eqs. (7)–(10) — linear ACE is MACE with one layer, fixed radial functions and a linear readout;
# Kovács et al., *Linear atomic cluster expansion force fields for organic molecules*, JCTC 17, 7696 (2021).

# %%
import os

import matplotlib.pyplot as plt
import torch

from minimace.ace import ACEBasis, LinearACE, design_matrix, mae_report
from minimace.datasets import load_shared, shared_e0s
from minimace.graph import batch_graphs
from minimace.testing import BATCH_ATOMS, BATCH_KINDS, assert_equivariant, assert_model_equivariant, \
    permutation_within_graphs

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.manual_seed(0)
r_max = 5.0
# quick mode (CI): a small basis and few configurations; full mode: the rMD17 protocol (950 + 50 configs)
BASIS = dict(n_max=4, l_max=2, max_degree=(4, 6, 6)) if QUICK else dict(n_max=8, l_max=3, max_degree=(8, 10, 8))
N_TRAIN, N_VALID, N_TEST = (60, 10, 50) if QUICK else (950, 50, 1000)

# %% [markdown]
# ## 1. Data
#
# rMD17 ethanol from the shared data folder: the first `N_TRAIN + N_VALID` configurations of `train.xyz`
# (training + validation), and `test_MD.xyz` for testing; isolated-atom energies $E^0_z$ at the same level
# of theory.

# %%
configs = load_shared("botnet_ethanol", "train", index=f":{N_TRAIN + N_VALID}")
test_configs = load_shared("botnet_ethanol", "test", index=f":{N_TEST}")
e0s = shared_e0s("botnet_ethanol")
graphs = [c.to_graph(r_max) for c in configs]
train, valid = graphs[:N_TRAIN], graphs[N_TRAIN:]
test = [c.to_graph(r_max) for c in test_configs]
print(f"train {len(train)}, valid {len(valid)}, test {len(test)};  E0s (eV): {e0s}")
assert len(train) == N_TRAIN and len(test) == N_TEST

# %% [markdown]
# ## 2. The basis
#
# - one-particle basis $\phi_{nzlm}(\mathbf r_{ij}) = R_n(r_{ij})\, Y_{lm}(\hat{\mathbf r}_{ij})\, \delta_{z z_j}$:
#   Bessel × envelope, one channel per radial index $n$ **and** neighbour element $z$;
# - atomic basis $A_{i,nzlm} = \sum_j \phi_{nzlm}$ (Eq. 8);
# - B-functions: products of $\nu$ components with labels $v_\xi = (n_\xi, z_\xi, l_\xi)$, coupled to an invariant with
#   `coupling_block` (symmetric only under permutations of *equal* labels), kept when the total degree
#   $\sum_\xi (n_\xi + 1 + l_\xi) \le D_\nu$ (sparse ACE). Unlike MACE, products mix channels.

# %%
basis = ACEBasis([1, 6, 8], r_max=r_max, **BASIS).double()
print("B-functions per correlation order nu:", basis.counts(), " total", basis.num_basis)
batch = batch_graphs(train[:2])
B = basis(batch["positions"], batch["atomic_numbers"], batch["edge_index"], batch["shifts"])   # [18, n_basis]
print("B shape [n_atoms, n_basis]:", tuple(B.shape))
assert basis.counts()[1] == BASIS["n_max"] * 3      # ν = 1: Σ_j R_n(r_ij) δ_{z z_j}, two-body

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
# `design_matrix` returns $X$ and the force rows $J = -\partial X/\partial \mathbf r$, from one forward-mode
# derivative (`torch.func.jvp`) per Cartesian coordinate of an atom, for all configurations at once.
# Check against finite differences:

# %%
X, J = design_matrix(basis, batch, forces=True)          # [2, 3 n_basis], [18, 3, 3 n_basis]
h, atom, alpha = 1e-5, 4, 2
shifted = [dict(batch, positions=batch["positions"] + s * h * torch.nn.functional.one_hot(
    torch.tensor(atom * 3 + alpha), 54).reshape(18, 3)) for s in (+1, -1)]
fd = -(design_matrix(basis, shifted[0], False)[0] - design_matrix(basis, shifted[1], False)[0]) / (2 * h)
print("X:", tuple(X.shape), " J:", tuple(J.shape), " |J - finite diff| =", (fd[0] - J[atom, alpha]).abs().max().item())
assert (fd[0] - J[atom, alpha]).abs().max() < 1e-6 * (1 + J[atom, alpha].abs().max())

# %% [markdown]
# ## 4. The fit: ridge least squares, λ chosen on the validation split
#
# Rows: energies weighted by $w_E/\sqrt{N_\text{atoms}}$ and force components by $w_F$. The normal matrix
# is accumulated batch by batch, its columns scaled to unit diagonal, and diagonalised once, so every λ costs
# one matrix–vector product; the λ with the lowest validation loss is kept.

# %%
model = LinearACE([1, 6, 8], e0s=e0s, r_max=r_max, **BASIS).fit(train, valid, energy_weight=30.0, forces_weight=1.0)
info = model.fit_info
print(f"{info['num_features']} coefficients; design matrix {info['design_seconds']:.1f} s, "
      f"fit {info['total_seconds']:.1f} s; chosen λ = {info['lambda']:.0e}")
for lam, loss in info["validation_loss"].items():
    print(f"  λ = {lam:.0e}   validation loss {loss:.4g}")
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
axes[0].set(xlabel="DFT energy − mean (eV)", ylabel="linear ACE (eV)", title="test energies")
axes[1].scatter(ref["forces"].flatten(), pred["forces"].flatten(), s=2, alpha=0.4)
axes[1].set(xlabel="DFT force component (eV/Å)", ylabel="linear ACE (eV/Å)", title="test forces")
for ax in axes:
    lims = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lims, lims, "k--", lw=0.8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. The fitted potential is a function of the positions: symmetry check
#
# `model(batch)` returns energies, per-atom energies and forces (by autograd). It must be invariant
# (energies) and equivariant (forces) under rotations, reflections, translations and permutations:

# %%
print(assert_model_equivariant(model, batch_graphs(test[:2]), atol=1e-9))

# %% [markdown]
# **Reproduce the full-size numbers** (rMD17 protocol, 950 train + 50 validation, 1000 test configurations):
#
# ```
# python -m minimace.ace ethanol                          # n_max 8, l_max 3, degrees (8, 12, 10)
# python -m minimace.ace aspirin --max-degree 8 10 8      # the basis of this notebook's full mode
# ```
#
# A linear ACE is a fixed-basis model: its error falls as the basis grows (more radial functions, higher degree
# and body order), at the price of a larger least-squares problem. MACE (notebooks 05+) learns the radial
# functions and mixes channels, and reaches lower errors with far fewer features.
