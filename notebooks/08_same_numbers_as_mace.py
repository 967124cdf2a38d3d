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
    packages = ["git+https://github.com/minimace/minimace", "mace-torch==0.3.16"]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *packages], check=True)

# %% [markdown]
# # 08 — Same numbers as the official implementation (mace-torch)
#
# **What you will learn**
# - how a model of the official implementation (mace-torch 0.3.16) becomes a `minimace.MACE` that runs only
#   minimace's own modules (`minimace.interop.from_mace_torch`), and the one sign to watch;
# - that both give the same energies, forces and stress — to ~1e-15 relative in float64 — on molecules and on
#   small periodic cells with many images, each side building its own neighbour list;
# - how fast each is on this machine (side by side, same run);
# - why minimace's coupling basis $C^{LM}_{\eta,\mathbf{lm}}$ is smaller than mace-torch's $U$ yet spans the
#   same space of B-functions, and how to move mace-torch's weights onto it.
#
# **Prerequisites**: notebooks 03 (products and B-functions), 05 (messages) and 06 (the full model).
#
# **What it needs**: the official implementation, mace-torch 0.3.16, which pins e3nn 0.4.4 — so this notebook runs
# in the second environment `.venv-mace`: create it with `make setup-mace`, register it as a kernel with
# `.venv-mace/bin/python -m ipykernel install --user --name minimace-mace` and choose that kernel (in Colab or a
# fresh environment: `pip install mace-torch==0.3.16` first). No data set is needed: the structures are built here.
# The first code cell stops with this explanation when mace-torch is missing.
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697), Eqs. (7)–(13); the coupling basis is
# Eq. (10), the message Eq. (11).

# %%
import importlib.metadata

try:
    MACE_TORCH = importlib.metadata.version("mace-torch")
except importlib.metadata.PackageNotFoundError:
    MACE_TORCH = "not installed"
if MACE_TORCH != "0.3.16":
    raise RuntimeError(
        f"This notebook needs mace-torch 0.3.16 (with e3nn 0.4.4); in this environment it is {MACE_TORCH}. "
        "Run it in the second environment: `make setup-mace`, then "
        "`.venv-mace/bin/python -m ipykernel install --user --name minimace-mace` and choose that kernel "
        "(or `pip install mace-torch==0.3.16` in a fresh environment)."
    )
import mace  # noqa: F401,E402  (the official implementation; must be imported before e3nn)

print("mace-torch", MACE_TORCH)

# %%
import copy
import os
import time

import numpy as np
import torch
from ase.build import molecule
from e3nn import o3
from mace import modules as mace_modules
from mace.tools.cg import U_matrix_real

from minimace.datasets import silicon_cells
from minimace.graph import atoms_to_graph
from minimace.interop import compare_with_mace_torch, from_mace_torch, mace_torch_batch, use_own_coupling_basis
from minimace.so3 import spherical_harmonics
from minimace.symmetric import b_functions, coupling_basis, count_couplings

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.set_default_dtype(dtype)
torch.manual_seed(0)
np.random.seed(0)

# %% [markdown]
# ## 1. A model built by mace-torch
#
# A `ScaleShiftMACE` with the standard blocks (`RealAgnosticInteractionBlock`, then
# `RealAgnosticResidualInteractionBlock`), two layers, $l_\text{max} = 3$, correlation $\nu = 3$, hidden irreps
# `16x0e+16x1o`, for H, C, O and Si, with its own random initialisation:
# $E = \sum_i \big[E^0_{z_i} + s \sum_t R_t(h_i^{(t)}) + \mu\big]$ (Eq. 13).

# %%
Z = [1, 6, 8, 14]
mace_model = mace_modules.ScaleShiftMACE(
    r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
    interaction_cls=mace_modules.RealAgnosticResidualInteractionBlock,
    interaction_cls_first=mace_modules.RealAgnosticInteractionBlock,
    num_interactions=2, num_elements=len(Z), hidden_irreps=o3.Irreps("16x0e+16x1o"), MLP_irreps=o3.Irreps("16x0e"),
    atomic_energies=np.array([-13.6, -1029.8, -2041.9, -158.5]), avg_num_neighbors=10.0, atomic_numbers=Z,
    correlation=3, gate=torch.nn.functional.silu, radial_MLP=[32, 32], atomic_inter_scale=1.3, atomic_inter_shift=-0.1,
)
n_mace = sum(p.numel() for p in mace_model.parameters())
print(f"mace-torch model: {n_mace} weights")
assert n_mace > 0

# %% [markdown]
# ## 2. Conversion
#
# `from_mace_torch` reads the configuration (radial basis, irreps, correlation per layer, E0s, scale and shift),
# builds a `minimace.MACE` and copies every weight; options minimace does not reproduce raise
# `NotImplementedError` naming the option. The coupling tensors $U$ stored by mace-torch are used as they are.
# One sign differs: mace-torch evaluates $Y_l^m$ on $\mathbf r_i - \mathbf r_j$ (neighbour → centre), minimace on
# $\mathbf r_{ij} = \mathbf r_j - \mathbf r_i$, and
# $$Y_l^m(-\hat{\mathbf r}) = (-1)^l\, Y_l^m(\hat{\mathbf r}),$$
# so the radial weights $R_{k l_1 l_2 l_3}$ of every path with an odd $l_2$ (the degree of $Y$) are negated.

# %%
model = from_mace_torch(mace_model)
modules = {type(m).__module__.split(".")[0] for m in model.modules()}
print("modules used by the converted model:", sorted(modules))
assert modules <= {"minimace", "torch"}  # no mace-torch / e3nn code in the forward pass

r = torch.randn(5, 3)
Y, Y_minus = spherical_harmonics(3, r), spherical_harmonics(3, -r)  # [5, 16]
parity = torch.cat([torch.full((2 * l + 1,), (-1.0) ** l) for l in range(4)])  # [16]
assert torch.allclose(Y_minus, Y * parity, atol=1e-14)

# %% [markdown]
# *Line ↔ equation*: `parity` is $(-1)^l$ repeated $2l+1$ times, in the layout of $Y$ (l = 0, 1, 2, 3 blocks).

# %% [markdown]
# ## 3. Side by side: molecules and periodic cells
#
# Each side builds its own graph: mace-torch with its data pipeline (`config_from_atoms` →
# `AtomicData.from_config`, a matscipy neighbour list, its `torch_geometric` batching), minimace with
# `minimace.graph` (vesin). We compare edge counts, energies, forces and, for periodic cells, the stress
# $\sigma = -W/V$ — as the largest relative difference $\max|\Delta| / \max|x_\text{mace}|$.
# The Si cells are built by `minimace.datasets.silicon_cells` with the structure types of the GAP-18 silicon set:
# strained 2-atom diamond and β-tin cells (with $r_\text{max} = 5$ Å each pair has dozens of periodic images) and
# a 64-atom disordered cell at the density of liquid silicon.

# %%
molecules = [molecule(name) for name in ("CH3CH2OH", "CH3COCH3", "H2O", "CH4")]
for i, atoms in enumerate(molecules):
    atoms.positions += 0.05 * np.random.default_rng(i).standard_normal(atoms.positions.shape)
silicon = silicon_cells(n=3 if QUICK else 12, n_liquid=1, seed=0)
cells, liquid = silicon["dia"] + silicon["bt"], silicon["liq"]


def show(name, result):
    print(f"{name:10s} edges mace {result['edges'][0]:6d}  minimace {result['edges'][1]:6d} | max rel. diff: "
          + "  ".join(f"{k} {result[k]:.1e}" for k in ("energy", "forces", "stress") if k in result))


results = {"molecules": compare_with_mace_torch(mace_model, model, molecules),
           "Si cells": compare_with_mace_torch(mace_model, model, cells),
           "Si liquid": compare_with_mace_torch(mace_model, model, liquid)}
for name, result in results.items():
    show(name, result)
    assert result["edges"][0] == result["edges"][1]
    assert all(result[k] < 1e-10 for k in ("energy", "forces", "stress") if k in result)

# %% [markdown]
# The total energies contain the E0s (~10³ eV per atom), which makes their relative difference easy to keep small.
# The honest test is the **interaction energy** $E - \sum_i E^0_{z_i}$: subtracting would cancel ~12 digits, so
# we set the E0s of both models to zero instead and compare again.

# %%
mace_no_e0, model_no_e0 = copy.deepcopy(mace_model), copy.deepcopy(model)
with torch.no_grad():
    mace_no_e0.atomic_energies_fn.atomic_energies.zero_()
    model_no_e0.atomic_energies.atomic_energies.zero_()
for name, atoms in (("molecules", molecules), ("Si cells", cells), ("Si liquid", liquid)):
    result = compare_with_mace_torch(mace_no_e0, model_no_e0, atoms)
    show(name, result)
    assert all(result[k] < 1e-10 for k in ("energy", "forces", "stress") if k in result)
print("interaction energies (eV):", result["minimace"]["energy"].tolist(), "vs", result["mace"]["energy"].tolist())

# %% [markdown]
# ## 4. Timing, side by side
#
# Energy and forces of the 64-atom disordered Si cell (and of ethanol), a few repeats each, same process and machine.
# These are wall-clock times on a shared CPU: compare the two columns, not with other machines.

# %%
repeats = 2 if QUICK else 10


def best_time(fn):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


for name, atoms in (("ethanol", molecules[:1]), ("Si liquid", liquid)):
    theirs, ours = mace_torch_batch(atoms, mace_model), atoms_to_graph(atoms[0], 5.0)
    t_mace = best_time(lambda: mace_model(theirs, compute_force=True))
    t_mini = best_time(lambda: model(ours))
    print(f"{name:10s} mace-torch {1e3 * t_mace:7.1f} ms   minimace {1e3 * t_mini:7.1f} ms   (best of {repeats})")
    assert t_mace > 0 and t_mini > 0

# %% [markdown]
# ## 5. Why minimace's coupling basis is smaller
#
# The B-functions (Eq. 10) contract a coupling tensor with the product basis
# $\mathbf A_{i,k\mathbf{lm}} = \prod_{\xi=1}^{\nu} A_{i,k l_\xi m_\xi}$,
# $$B_{i,\eta k LM} = \sum_{\mathbf{lm}} C^{LM}_{\eta,\mathbf{lm}}\, \mathbf A_{i,k\mathbf{lm}} .$$
# $\mathbf A$ is a **symmetric** tensor (the same $A_{i,k}$ in every slot), so only the symmetric part of $C$
# matters: $C$ and $\mathrm{Sym}(C)$ give the same B. The independent B-functions are a basis of the equivariant
# maps $\mathrm{Sym}^\nu(V) \to V_L$; their number is the multiplicity of $V_L$ in $\mathrm{Sym}^\nu(V)$
# (`count_couplings`). mace-torch's $U$ (without its GPU library) enumerates coupling paths of the full tensor
# product $V^{\otimes\nu}$, many of which have the same symmetric part or none at all. Below: the number of
# columns of each, and the rank of the B-functions they give on random $A$ (200 samples).

# %%
lmax, d = 3, 16
print(" ν  L  | mace-torch U | minimace U | count | rank B(mace) | rank [B(mace), B(minimace)]")
for nu in (1, 2, 3):
    for L, p in ((0, 1), (1, -1), (2, 1)):
        ir = f"{L}{'e' if p == 1 else 'o'}"
        U_mace = U_matrix_real(o3.Irreps("0e+1o+2e+3o"), o3.Irreps(ir), nu, dtype=dtype)[-1]
        U_mace = U_mace.unsqueeze(0) if U_mace.dim() == nu + 1 else U_mace  # [2L+1, d, .., d, P_mace]
        U_own = coupling_basis(lmax, nu, L, p)  # [2L+1, d, .., d, P_own]
        A = torch.randn(200, d)
        B_mace = b_functions(A, U_mace).reshape(-1, U_mace.shape[-1])  # [200·(2L+1), P_mace]
        B_own = b_functions(A, U_own).reshape(-1, U_own.shape[-1])  # [200·(2L+1), P_own]
        rank = int(torch.linalg.matrix_rank(B_mace))
        joint = int(torch.linalg.matrix_rank(torch.cat([B_mace, B_own], dim=1)))
        print(f" {nu}  {ir} | {U_mace.shape[-1]:12d} | {U_own.shape[-1]:10d} | {count_couplings(lmax, nu, L, p):5d} |"
              f" {rank:12d} | {joint:6d}")
        assert rank == joint == U_own.shape[-1] == count_couplings(lmax, nu, L, p) <= U_mace.shape[-1]

# %% [markdown]
# *Line ↔ equation*: `b_functions(A, U)` is Eq. (10) for one channel; equal ranks of `B_mace`, `B_own` and of
# both together mean the two sets of B-functions span the same space, and minimace's has no redundant member
# (e.g. for $\nu = 3$, $L = 0$: 23 mace-torch columns, 8 independent functions).
#
# ## 6. Moving mace-torch's weights onto minimace's basis
#
# Since $\mathrm{Sym}(U_\text{mace}) = U_\text{own} X$ for a matrix $X$ (least squares, zero residual), the
# message (Eq. 11) $\sum_\eta W_{z\eta k} B_{\eta k LM}$ is unchanged by $W_\text{own} = X\, W_\text{mace}$ — with
# fewer weights. `use_own_coupling_basis` does this for every layer, irrep and ν.

# %%
own = use_own_coupling_basis(copy.deepcopy(model_no_e0))
n_before = sum(p.numel() for p in model_no_e0.messages.parameters())
n_after = sum(p.numel() for p in own.messages.parameters())
print(f"product-basis weights: {n_before} (mace-torch's U) -> {n_after} (minimace's exact basis)")
for name, atoms in (("molecules", molecules), ("Si cells", cells)):
    result = compare_with_mace_torch(mace_no_e0, own, atoms)
    show(name, result)
    assert all(result[k] < 1e-10 for k in ("energy", "forces", "stress") if k in result)
assert n_after < n_before

# %% [markdown]
# ## Summary
# - `from_mace_torch` (or `from_mace_torch_file` for a saved model, read with `weights_only=True` and an
#   allow-list) gives a minimace model with mace-torch's numbers: energies, forces and stress agree to rounding
#   in float64, with independently built neighbour lists.
# - The only convention to translate is the direction of the edge vector: $(-1)^l$ on odd-$l$ paths.
# - minimace's coupling basis is exact and independent; mace-torch's is over-complete. Both span the same
#   B-functions, and mace-torch's weights project onto minimace's basis without changing any output.
