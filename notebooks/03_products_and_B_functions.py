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

# %% [markdown]
# # 03 — Products and B-functions: the symmetric basis of MACE and ACE
#
# **What you will learn**
# - the *product basis* $\mathbf A_{i,k\mathbf{lm}} = \prod_{\xi=1}^{\nu} A_{i,k l_\xi m_\xi}$ (the product inside
#   MACE Eq. 10), a symmetric tensor, and why only the symmetric part of a coupling tensor matters;
# - the *density trick* behind it: the body-ordered sums of Eq. 7 run over all neighbour tuples, $j_1 = j_2$
#   included, so they equal products of $A$ — checked, and its cost measured;
# - the *generalized Clebsch–Gordan coefficients* $C^{LM}_{\eta,\mathbf{lm}}$ of the B-functions
#   $B_{i,\eta kLM} = \sum_{\mathbf{lm}} C^{LM}_{\eta,\mathbf{lm}} \mathbf A_{i,k\mathbf{lm}}$ (MACE Eq. 10):
#   how `minimace.symmetric.coupling_basis` builds an exact, linearly independent set of them;
# - how many B-functions there are (an exact count, and a widget over $\nu$ and $l_{\max}$);
# - exact sympy proofs that B-functions are invariant ($\nu = 2$ and $\nu = 3$) or rotate as vectors ($L = 1$);
# - the special cases of ACE, computed: Behler–Parrinello symmetry functions (radial $G^2$ for $\nu=1$, angular
#   for $\nu=2$), MTP moment tensors, the SOAP power spectrum, the bispectrum and SNAP's 4D bispectrum.
#
# **Prerequisites**: notebooks 00 (spherical harmonics, Wigner D, Clebsch–Gordan) and 02 (the atomic basis $A_i$).
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697 v2), Eqs. (7) and (10);
# Drautz, *Atomic cluster expansion*, PRB 99, 014104 (2019); Bartók, Kondor, Csányi, *On representing chemical
# environments*, PRB 87, 184115 (2013) (power spectrum and bispectrum); Behler, J. Chem. Phys. 134, 074106 (2011)
# (symmetry functions); Shapeev, Multiscale Model. Simul. 14, 1153 (2016) (MTP); Bartók, Payne, Kondor, Csányi,
# PRL 104, 136403 (2010) (the 4D bispectrum); Thompson et al., J. Comput. Phys. 285, 316 (2015) (SNAP).

# %%
import io
import itertools
import math
import os
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import sympy as sp
import torch
from IPython.display import Image, display

from minimace.figures import ace_features_example, ace_features_figure
from minimace.radial import BesselBasis, PolynomialCutoff
from minimace.so3 import irreps_D, random_O3, spherical_harmonics, wigner_3j
from minimace.symmetric import (b_functions, count_couplings, coupling_basis, degree_multisets, neighbour_product_sum,
                                product_basis, rank_gap, reduce_trig, symbolic_atomic_basis, symbolic_b_functions,
                                symbolic_rotation, to_sympy)
from minimace.testing import assert_equivariant

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)
LMAX = 3
IRREPS = "+".join(f"1x{l}{'eo'[l % 2]}" for l in range(LMAX + 1))   # spherical harmonics: 0e+1o+2e+3o
d = (LMAX + 1) ** 2

# %% [markdown]
# ## 0. The whole chain on one atom of ethanol
#
# The figure `figures/ace_features.png` (written by `python -m minimace.figures`) follows the oxygen of an
# ethanol molecule through the stages of this notebook and the two before: its edges, the one-particle basis
# φ of every edge (notebook 01), the atomic basis $A = \sum_j \phi_j$ (notebook 02), the products and the
# invariant B-functions. The cell recomputes it; every number in it comes from the package.

# %%
example = ace_features_example()                            # one channel, l_max = 2, r_c = 3 Å
png = io.BytesIO()
ace_features_figure(example=example).savefig(png, format="png", dpi=90, bbox_inches="tight")
display(Image(png.getvalue()))
print("neighbours of atom", example["centre"], ":", example["neighbours"].tolist())

# %% [markdown]
# ## 1. The product basis (inside Eq. 10)
#
# For one channel $k$, the atomic basis $A_{i,k}$ is a vector of $d = (l_{\max}+1)^2$ numbers
# (the irreps $0e + 1o + 2e + 3o$). Its $\nu$-fold product
# $$\mathbf A_{i,k\,\mathbf{lm}} = \prod_{\xi=1}^{\nu} A_{i,k\,l_\xi m_\xi}$$
# is a tensor with $d^\nu$ entries, **symmetric** under any permutation of its indices, so only
# $\binom{d+\nu-1}{\nu}$ of them are distinct.

# %%
A = torch.randn(d, dtype=dtype, generator=gen)             # [d]: A_{i,k,lm} of one atom, one channel
P3 = product_basis(A, 3)                                  # [d, d, d]
print("product basis shape:", tuple(P3.shape), " entries:", P3.numel())
distinct = math.comb(d + 3 - 1, 3)
print("distinct entries (symmetric):", distinct)
assert torch.allclose(P3[1, 5, 9], A[1] * A[5] * A[9])
for perm in itertools.permutations(range(3)):               # symmetric (up to rounding of the products)
    assert torch.allclose(P3, P3.permute(*perm), rtol=1e-15, atol=1e-15)

# %% [markdown]
# *Line ↔ equation*: `product_basis(A, 3)[i, j, k]` $= A_i A_j A_k$ is $\mathbf A_{\mathbf{lm}}$, the product inside Eq. (10),
# with the multi-index $\mathbf{lm} = (i, j, k)$ running over the $d$ components.
#
# Consequence: in $B = \sum C\,\mathbf A$ only the **symmetric part** of $C$ survives. An antisymmetric
# coupling — e.g. the cross product $u \times u$ — gives zero:

# %%
C_anti = torch.randn(d, d, dtype=dtype, generator=gen)
C_anti = C_anti - C_anti.T                                 # antisymmetric in (i, j)
print("Σ C_anti A A =", torch.einsum("ij,ij->", C_anti, product_basis(A, 2)).item())
assert abs(torch.einsum("ij,ij->", C_anti, product_basis(A, 2))) < 1e-12


# %% [markdown]
# ### The density trick (Eq. 7)
#
# MACE's body-ordered message (Eq. 7) sums functions of 2, 3, … neighbours over **all** tuples
# $(j_1, \dots, j_\nu)$, the self-interactions $j_1 = j_2$ included. With that convention the $\nu$-fold sum
# factorises into a product of one-fold sums:
# $$\sum_{j_1, j_2} \phi_{j_1} \otimes \phi_{j_2} = \Big(\sum_j \phi_j\Big) \otimes \Big(\sum_j \phi_j\Big) = A \otimes A .$$
# `neighbour_product_sum` forms the left side tuple by tuple; here on the oxygen environment of section 0:

# %%
phi_O, A_O = torch.tensor(example["phi"]), torch.tensor(example["A"])    # [N, 9], [9]
for nu in (2, 3):
    err = (neighbour_product_sum(phi_O, nu) - product_basis(A_O, nu)).abs().max().item()
    print(f"nu = {nu}: max |Σ_(j1..jν) φ⊗…⊗φ − A⊗…⊗A| = {err:.1e}")
    assert err < 1e-12
distinct = neighbour_product_sum(phi_O, 2) - phi_O.T @ phi_O               # Σ over j1 ≠ j2 only
print("without the self-interactions j1 = j2 the sum differs by", (distinct - product_basis(A_O, 2)).abs().max().item())

# %% [markdown]
# Without the $j_1 = j_2$ terms the factorisation fails (last line): the self-interactions are what make the
# trick exact. The cost: the left side has $N^\nu$ terms, the right side needs $N$ additions and one product.
# Measured here on random φ (one channel, $l_{\max} = 3$ for $\nu = 2$, $l_{\max} = 2$ for $\nu = 3$):

# %%
def seconds(f, repeat=5):
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best

sizes = {2: [4, 8, 16, 32, 64], 3: [4, 8, 16] if QUICK else [4, 8, 16, 24]}
timings = {}
for nu, dim in ((2, 16), (3, 9)):
    for N in sizes[nu]:
        phi = torch.randn(N, dim, dtype=dtype, generator=gen)
        timings[nu, N] = (seconds(lambda: neighbour_product_sum(phi, nu)),
                          seconds(lambda: product_basis(phi.sum(0), nu)))
fig, ax = plt.subplots(figsize=(6, 3.5))
for nu, colour in ((2, "C0"), (3, "C1")):
    ax.loglog(sizes[nu], [timings[nu, N][0] for N in sizes[nu]], "o-", color=colour, label=f"ν={nu}: Σ over tuples")
    ax.loglog(sizes[nu], [timings[nu, N][1] for N in sizes[nu]], "s--", color=colour, label=f"ν={nu}: A⊗…⊗A")
ax.set(xlabel="number of neighbours N", ylabel="time [s]", title="density trick: cost of both sides")
ax.set_xticks(sizes[2], [str(N) for N in sizes[2]], minor=False)
ax.set_xticks([], minor=True)
ax.legend(fontsize=8)
plt.show()
for nu in (2, 3):
    N = sizes[nu][-1]
    print(f"nu = {nu}, N = {N}: tuples {timings[nu, N][0] * 1e3:.2f} ms, product of sums {timings[nu, N][1] * 1e3:.3f} ms")

# %% [markdown]
# *Line ↔ equation*: `neighbour_product_sum(phi, ν)` is the left side of the identity (its time grows as
# $N^\nu$, the slopes of the solid lines); `product_basis(phi.sum(0), ν)` the right side (almost flat in $N$).
# This is why MACE (and ACE) compute $A$ first and never loop over neighbour pairs or triples.

# %% [markdown]
# ## 2. Generalized Clebsch–Gordan coefficients (Eq. 10)
#
# We want all linear maps $C: \mathrm{Sym}^\nu(V) \to V_L$ (parity $p$) that commute with rotations and
# reflections:
# $$\sum_{\mathbf{lm}} C^{LM}_{\eta,\mathbf{lm}} \prod_\xi D^{l_\xi}_{m_\xi m'_\xi}(Q) = \sum_{M'} D^L_{MM'}(Q)\, C^{LM'}_{\eta,\mathbf{lm'}}\quad \forall Q\in O(3).$$
#
# **Construction** (`coupling_basis`), for each multiset of degrees $l_1 \le \dots \le l_\nu$ of parity
# $(-1)^{\sum l} = p$:
# 1. *candidates*: recursive coupling trees $((l_1 \otimes l_2 \to k_2) \otimes l_3 \to k_3) \dots \to L$ with
#    Wigner-3j symbols — they span all equivariant maps but are **over-complete** on symmetric tensors;
# 2. *symmetrise* over permutations of equal degrees, then keep an orthonormal, linearly independent set
#    (Gram–Schmidt in candidate order);
# 3. *certify the rank*: the number kept must equal an exact integer count (section 3), and every rejected
#    candidate has a residual below `_TOL_ZERO` and every kept one above `_TOL_KEEP`. The gap, measured for
#    $l_{\max} = 3$, $\nu \le 3$ (every $L$ and parity):

# %%
for nu in (2, 3):
    dependent, kept = rank_gap(LMAX, nu)
    worst = "none is dependent" if math.isnan(dependent) else f"largest residual of a dependent one {dependent:.1e}"
    print(f"nu = {nu}: smallest residual of a kept candidate {kept:.2f}, {worst}")
    assert kept > 1e-3 and not dependent > 1e-10

# %% [markdown]
# The paper's Eq. (10) mixes the channels inside the product (each factor is $\sum_{\tilde k} w_{k\tilde k l_\xi}
# A_{i,\tilde k l_\xi m_\xi}$); minimace, like mace-torch, keeps the channels $k$ separate in B, the channel
# mixing being the linear map applied to $A$ before (notebook 02).
#
# How over-complete are the coupling trees? Count them:

# %%
def n_trees(ls, L):                                        # number of intermediate k's allowed in the tree
    ks = [ls[0]]
    for l in ls[1:]:
        ks = [k2 for k in ks for k2 in range(abs(k - l), k + l + 1)]
    return sum(k == L for k in ks)

for nu, L, p in [(2, 1, -1), (3, 0, 1), (3, 2, 1), (4, 0, 1)]:
    trees = sum(n_trees(ls, L) for ls in degree_multisets(LMAX, nu, parity=p))
    print(f"nu={nu}, L={L}: {trees:4d} coupling trees, {count_couplings(LMAX, nu, L, p):3d} independent B-functions")
    assert trees >= count_couplings(LMAX, nu, L, p)

# %%
U = coupling_basis(LMAX, 3, 1, -1)                         # [2L+1, d, d, d, n_paths]
n_paths = U.shape[-1]
print("U shape:", tuple(U.shape))
Q = random_O3(dtype=dtype, generator=gen)                  # rotation or reflection
D, D_L = irreps_D(IRREPS, Q), irreps_D("1x1o", Q)          # [d, d], [3, 3]
lhs = torch.einsum("Mabcn,aA,bB,cC->MABCn", U, D, D, D)    # U (D ⊗ D ⊗ D)
rhs = torch.einsum("MN,NABCn->MABCn", D_L, U)              # D_L U
print("equivariance error:", (lhs - rhs).abs().max().item())
assert (lhs - rhs).abs().max() < 1e-12
assert torch.equal(U, U.permute(0, 2, 1, 3, 4)) or (U - U.permute(0, 2, 1, 3, 4)).abs().max() < 1e-15
G = U.reshape(-1, n_paths).T @ U.reshape(-1, n_paths)      # Gram matrix of the paths
assert torch.allclose(G, 3 * torch.eye(n_paths, dtype=dtype), atol=1e-12)   # orthogonal, ‖U_η‖² = 2L+1

# %% [markdown]
# *Line ↔ equation*: `lhs` is the left side of the equivariance condition above, `rhs` the right side; the
# Gram matrix $\sum_{M,\mathbf{lm}} C^{LM}_{\eta,\mathbf{lm}} C^{LM}_{\eta',\mathbf{lm}} = (2L+1)\delta_{\eta\eta'}$
# says the $n_\text{paths}$ B-functions are linearly independent ("component" normalisation: for $\nu=1$,
# $C$ is the identity on the $l = L$ block).
#
# B-functions of Eq. (10) are computed by contracting one index at a time (`b_functions`), never forming the
# $d^\nu$ product basis. They are equivariant functions of $A$ — checked with `assert_equivariant`:

# %%
A_batch = torch.randn(10, 4, d, dtype=dtype, generator=gen)    # [atoms, channels k, d]
B = b_functions(A_batch, U)                                     # [atoms, k, 2L+1, n_paths]
B_ref = torch.einsum("Mabcn,...abc->...Mn", U, product_basis(A_batch, 3))
assert torch.allclose(B, B_ref, atol=1e-12)
as_irreps = lambda a: b_functions(a, U).transpose(-1, -2).flatten(-2)   # mul_ir layout "n x 1o"
report = assert_equivariant(as_irreps, (A_batch,), (IRREPS,), f"{n_paths}x1o", tests=("rotation", "reflection"))
print(report)

# %% [markdown]
# ## 3. How many B-functions? An exact count
#
# The number of independent $C^{LM}_\eta$ is the multiplicity of $V_L$ in $\mathrm{Sym}^\nu(V)$.
# `count_couplings` counts it exactly with integers: the weights ($M$ values) of $\mathrm{Sym}^m(V_l)$ are
# sums of $m$-multisets of $\{-l,\dots,l\}$, and a representation with weight multiplicities $n(w)$ contains
# $V_L$ exactly $n(L) - n(L+1)$ times. (The tests also check it against the character formula integrated
# over O(3), and against the fixed space of the group computed by an SVD.)
#
# Invariants ($L=0$, even) for one channel:

# %%
print("nu \\ lmax " + " ".join(f"{l:>5}" for l in range(5)))
for nu in range(1, 5):
    print(f"{nu:>9}  " + " ".join(f"{count_couplings(l, nu, 0, 1):>5}" for l in range(5)))

# %% [markdown]
# Closed forms for the first orders (natural parity, one channel):
# - $\nu = 1$: only $l = 0$ → 1 invariant;
# - $\nu = 2$: $\sum_m A_{lm}A_{lm}$ for each $l$ → $l_{\max}+1$ (the power spectrum);
# - $\nu = 3$: one invariant per triangle $l_1 \le l_2 \le l_3$ with $l_1+l_2+l_3$ even (the bispectrum;
#   an odd sum gives a *pseudo*scalar, and a symmetric triple $l,l,l$ with odd $l$ vanishes).

# %%
for lmax in range(6):
    triangles = [t for t in itertools.combinations_with_replacement(range(lmax + 1), 3)
                 if t[2] <= t[0] + t[1] and sum(t) % 2 == 0]
    assert count_couplings(lmax, 1, 0, 1) == 1
    assert count_couplings(lmax, 2, 0, 1) == lmax + 1
    assert count_couplings(lmax, 3, 0, 1) == len(triangles)
print("closed forms hold for lmax = 0..5")


# %% [markdown]
# The counts grow fast with $\nu$ and $l_{\max}$ — the number of weights of one MACE layer per channel and
# output irrep. Move the sliders (a live widget in Jupyter; a static figure otherwise):

# %%
def plot_counts(L=0, nu_max=4, lmax_max=6):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lmaxes = list(range(lmax_max + 1))
    for nu in range(1, nu_max + 1):
        counts = [count_couplings(l, nu, L, (-1) ** L) for l in lmaxes]
        shown = [(l, c) for l, c in zip(lmaxes, counts) if c > 0]          # none at all below some l_max
        ax.semilogy([l for l, _ in shown], [c for _, c in shown], "o-", label=f"ν = {nu}")
    ax.set(xlabel="$l_{max}$", ylabel="number of B-functions", title=f"B-functions of one channel, L = {L} (natural parity)")
    ax.legend(fontsize=8)
    plt.show()
    return counts

last = plot_counts()
print("nu = 4, L = 0, l_max = 0..6:", last)
widgets.interactive(plot_counts, L=(0, 4), nu_max=(1, 4), lmax_max=(1, 6))

# %% [markdown]
# ## 4. Exact proofs with sympy
#
# For $\nu = 2$ (and the $\nu = 3$ blocks used below) the coupling coefficients are square roots of
# rationals; `to_sympy` recognises them exactly. For $\nu = 2$, $L = 0$ they are $\delta_{mm'}/\sqrt{2l+1}$:

# %%
U2 = to_sympy(coupling_basis(2, 2, 0, 1))                  # [1, 9, 9, 3] exact
print([U2[0, l * l, l * l, l] for l in range(3)])
assert [U2[0, l * l, l * l, l] for l in range(3)] == [1, 1 / sp.sqrt(3), 1 / sp.sqrt(5)]

# %% [markdown]
# Two neighbours at symbolic positions $\mathbf r_1, \mathbf r_2$; the atomic basis uses the solid harmonics
# $r^l Y_{lm}(\hat{\mathbf r})$ (exact polynomials, `symbolic_atomic_basis`). `symbolic_rotation("z")` and
# `symbolic_rotation("y")` rotate about z and y by an angle with symbols $c = \cos$, $s = \sin$; these two
# families generate every rotation (Euler angles), so an identity that holds for both, at every angle, holds for
# all of SO(3). `reduce_trig` applies $s^2 + c^2 = 1$: the differences are **exactly** zero.
#
# $\nu = 2$: the $L = 0$ B-functions are invariant and the $L = 1$ B-functions rotate as a vector,
# $B_{L=1}(R\mathbf r) = R\, B_{L=1}(\mathbf r)$ ($D^1(R) = R$ in e3nn's basis $\sqrt3(x, y, z)$):

# %%
r1, r2 = sp.Matrix(sp.symbols("x1 y1 z1", real=True)), sp.Matrix(sp.symbols("x2 y2 z2", real=True))
A_sym = symbolic_atomic_basis([r1, r2], 2)                  # 9 polynomials
U2_vec = to_sympy(coupling_basis(2, 2, 1, -1))              # [3, 9, 9, 2] exact, L = 1
for axis in ("z", "y"):
    R = symbolic_rotation(axis)
    A_rot = symbolic_atomic_basis([R * r1, R * r2], 2)
    invariant = symbolic_b_functions(U2, A_rot) - symbolic_b_functions(U2, A_sym)
    vector = symbolic_b_functions(U2_vec, A_rot) - R * symbolic_b_functions(U2_vec, A_sym)
    print(axis, "axis:  B_L=0(Rr) - B_L=0(r) =", [reduce_trig(v) for v in invariant],
          "  B_L=1(Rr) - R B_L=1(r) =", [reduce_trig(v) for v in vector])
    assert all(reduce_trig(v) == 0 for v in list(invariant) + list(vector))

# %% [markdown]
# $\nu = 3$: the B-function of the block $(l_1, l_2, l_3) = (1, 1, 2)$ — a genuine three-body invariant, not a
# product of lower ones — is invariant too. Negative control: changing one coefficient of it breaks the
# invariance (the extra term $A_{1,-1}^2 A_{2,0}$ is not invariant):

# %%
U3 = to_sympy(coupling_basis(2, 3, 0, 1))                   # [1, 9, 9, 9, 5] exact
eta = 3                                                     # the (1, 1, 2) block
assert U3[0, 1, 1, 6, eta] != 0 and U3[0, 0, 0, 0, eta] == 0
for axis in ("z", "y"):
    R = symbolic_rotation(axis)
    A_rot = symbolic_atomic_basis([R * r1, R * r2], 2)
    diff = symbolic_b_functions(U3, A_rot, path=eta)[0] - symbolic_b_functions(U3, A_sym, path=eta)[0]
    extra = A_rot[1] ** 2 * A_rot[6] - A_sym[1] ** 2 * A_sym[6]
    print(axis, "axis:  B(Rr) - B(r) =", reduce_trig(diff), "  broken coefficient: nonzero =",
          reduce_trig(extra) != 0)
    assert reduce_trig(diff) == 0 and reduce_trig(extra) != 0

# %% [markdown]
# ## 5. Special cases of ACE: ACSF, MTP, SOAP, bispectrum, SNAP
#
# Random environments: 6–12 neighbours in a ball of radius 4.5 Å. The ACE radial functions are
# $R_n(r) = j_n(r) f_p(r)$ (Bessel × envelope, `minimace.radial`) and $A_{n,lm} = \sum_j R_n(r_j) Y_{lm}(\hat{\mathbf r}_j)$,
# with channels $n$. Each descriptor below is fitted by least squares with the B-functions as features on half
# of the environments, and its relative residual is measured on the other half.

# %%
n_env, r_cut = 600, 5.0

def random_environment(n_neighbours):                      # r_ij of the neighbours, 1 Å < r < 4.5 Å
    r = torch.randn(n_neighbours, 3, dtype=dtype, generator=gen)
    return r / r.norm(dim=1, keepdim=True) * (1 + 3.5 * torch.rand(n_neighbours, 1, dtype=dtype, generator=gen))

def atomic_basis_of(envs, n_max, lmax=LMAX):               # A [n_env, n_max, (lmax+1)^2]
    bessel, cutoff = BesselBasis(r_cut, n_max).double(), PolynomialCutoff(r_cut, 5)
    R_n = [bessel(r.norm(dim=1, keepdim=True)) * cutoff(r.norm(dim=1, keepdim=True)) for r in envs]   # [n_nb, n_max]
    return torch.stack([R.T @ spherical_harmonics(lmax, r) for R, r in zip(R_n, envs)])

def held_out_residual(features, targets):                  # fit on the first half, relative error on the second
    half = features.shape[0] // 2
    sol = torch.linalg.lstsq(features[:half], targets[:half]).solution
    return ((features[half:] @ sol - targets[half:]).norm() / targets[half:].norm()).item()

envs = [random_environment(int(torch.randint(6, 13, (1,), generator=gen))) for _ in range(n_env)]
A_all = atomic_basis_of(envs, 16)                          # [n_env, 16, d]; the first n channels = basis of size n
n_max = 4
A_env = A_all[:, :n_max]                                   # [n_env, n_max, d]
print("A:", tuple(A_env.shape))

# %% [markdown]
# **ν = 1 — two-body.** The only invariant is the $l=0$ component, $\sum_j R_n(r_j)$:

# %%
B1 = b_functions(A_env, coupling_basis(LMAX, 1, 0, 1))[..., 0, 0]   # [n_env, n_max]
bessel, cutoff = BesselBasis(r_cut, n_max).double(), PolynomialCutoff(r_cut, 5)
radial_sums = torch.stack([(bessel(r.norm(dim=1, keepdim=True)) * cutoff(r.norm(dim=1, keepdim=True))).sum(0)
                           for r in envs])                           # Σ_j R_n(r_j)
assert torch.allclose(B1, radial_sums, atol=1e-12)
print("nu=1 B-functions = radial sums, max diff", (B1 - radial_sums).abs().max().item())

# %% [markdown]
# **Behler–Parrinello radial symmetry function** $G^2 = \sum_j e^{-\eta (r_j - r_s)^2} f_c(r_j)$ with
# $f_c(r) = \tfrac12(\cos(\pi r/r_c) + 1)$: a sum over neighbours of one radial function, so it lies in the span of
# the $\nu = 1$ B-functions as far as that function lies in the span of the radial basis $R_1, \dots, R_n$.
# The residual falls as the radial basis grows:

# %%
def f_c(r):                                                # Behler's cosine cutoff
    return 0.5 * (torch.cos(math.pi * r / r_cut) + 1) * (r < r_cut)

eta, r_s = 1.0, 2.0                                        # Å^-2, Å
G2 = torch.stack([(torch.exp(-eta * (r.norm(dim=1) - r_s) ** 2) * f_c(r.norm(dim=1))).sum() for r in envs])[:, None]
B1_all = b_functions(A_all, coupling_basis(LMAX, 1, 0, 1))[..., 0, 0]    # [n_env, 16]
for n in (2, 4, 8, 16):
    print(f"G2 from the nu = 1 B-functions of {n:2d} radial channels: relative residual {held_out_residual(B1_all[:, :n], G2):.1e}")

# %% [markdown]
# **Angular symmetry functions** (Behler 2011):
# $G^{5} = 2^{1-\zeta} \sum_{j \ne k} (1 + \lambda \cos\theta_{jk})^\zeta\, e^{-\eta (r_j^2 + r_k^2)} f_c(r_j) f_c(r_k)$, and
# $G^{4}$, the same with a third factor $e^{-\eta r_{jk}^2} f_c(r_{jk})$ of the distance between the two neighbours.
# $(1 + \lambda\cos\theta)^\zeta$ is a polynomial of degree ζ in $\cos\theta_{jk} = \hat{\mathbf r}_j\cdot\hat{\mathbf r}_k$,
# i.e. a sum of $P_l(\cos\theta_{jk}) \propto \sum_m Y_{lm}(\hat{\mathbf r}_j) Y_{lm}(\hat{\mathbf r}_k)$ with $l \le \zeta$: so the
# sum over **all** pairs is a $\nu = 2$ B-function (with mixed radial channels, the polarisation of SOAP below),
# and the excluded $j = k$ terms are a one-body radial sum ($\nu = 1$). $G^4$ is not exactly of that form: its
# factor of $r_{jk}$ couples the two neighbours through every $l$, and the residual shows it.

# %%
zeta, lam, eta_a = 2, 1.0, 0.3

def angular_G(r, with_rjk):
    rr = r.norm(dim=1)
    cos = (r @ r.T) / (rr[:, None] * rr[None, :])
    g = torch.exp(-eta_a * rr**2) * f_c(rr)
    terms = (1 + lam * cos) ** zeta * g[:, None] * g[None, :]
    if with_rjk:
        r_jk = (r[:, None] - r[None, :]).norm(dim=-1)
        terms = terms * torch.exp(-eta_a * r_jk**2) * f_c(r_jk)
    return 2 ** (1 - zeta) * (terms.sum() - terms.diagonal().sum())    # j ≠ k

G5 = torch.stack([angular_G(r, False) for r in envs])[:, None]
G4 = torch.stack([angular_G(r, True) for r in envs])[:, None]
U_1, U_2 = coupling_basis(LMAX, 1, 0, 1), coupling_basis(LMAX, 2, 0, 1)

def nu12_features(n):                                      # ν = 1 and ν = 2 B-functions, channels mixed by polarisation
    A = A_all[:, :n]
    nu2 = [b_functions(A[:, a] + A[:, b] if a != b else A[:, a], U_2)[:, 0] for a in range(n) for b in range(a, n)]
    return torch.cat([b_functions(A, U_1)[..., 0, 0]] + nu2, dim=1)

for n in (2, 4, 6):
    F = nu12_features(n)
    print(f"{n} radial channels, {F.shape[1]:3d} B-functions:  G5 residual {held_out_residual(F, G5):.1e},"
          f"  G4 residual {held_out_residual(F, G4):.1e}")

# %% [markdown]
# **MTP — moment tensors** (Shapeev 2016): $M_{\mu,\nu} = \sum_j f_\mu(r_j)\, \hat{\mathbf r}_j^{\otimes \nu}$, and the
# invariants are their full contractions. Here $f = R_1$ (one channel). A contraction of $q$ moment tensors is a
# polynomial of degree $q$ in $A$ (since $\hat{\mathbf r}^{\otimes\nu}$ is a combination of $Y_{lm}$, $l \le \nu$, of the
# same parity), so it is a combination of the $\nu = q$ B-functions of that channel — exactly:

# %%
def moments(r):                                            # M0 (scalar), M1 (vector), M2 (matrix) with f = R_1
    rr = r.norm(dim=1, keepdim=True)
    f = (BesselBasis(r_cut, 2).double()(rr) * PolynomialCutoff(r_cut, 5)(rr))[:, 1]    # R_1 = channel 1
    u = r / rr
    return f.sum(), f @ u, torch.einsum("j,ja,jb->ab", f, u, u)

M = [moments(r) for r in envs]
mtp = {"M0 (q=1)": [m0 for m0, _, _ in M], "M1·M1 (q=2)": [m1 @ m1 for _, m1, _ in M],
       "M2:M2 (q=2)": [(m2 * m2).sum() for _, _, m2 in M], "M1·M2·M1 (q=3)": [m1 @ m2 @ m1 for _, m1, m2 in M],
       "tr M2³ (q=3)": [torch.trace(m2 @ m2 @ m2) for _, _, m2 in M]}
A1 = A_env[:, 1]                                           # the channel R_1
B_by_q = {q: b_functions(A1, coupling_basis(LMAX, q, 0, 1))[:, 0] for q in (1, 2, 3)}
for name, values in mtp.items():
    q = int(name[-2])
    res = held_out_residual(B_by_q[q], torch.stack(values)[:, None])
    print(f"{name:15s} from the {B_by_q[q].shape[1]} nu = {q} B-functions: relative residual {res:.1e}")
    assert res < 1e-10

# %% [markdown]
# **ν = 2 — SOAP power spectrum** $p_{nn'l} = \sum_m A_{nlm} A_{n'lm}$.
# The B-functions are per channel ($n = n'$), as in MACE. The cross terms $n \ne n'$ come from the same
# B-functions evaluated on mixed channels, by polarisation:
# $B(A_n + A_{n'}) - B(A_n) - B(A_{n'}) = 2\sum C A_n A_{n'}$ — which is what MACE's channel mixing provides.
# We reconstruct $p$ from B by least squares:

# %%
pairs = [(n, m) for n in range(n_max) for m in range(n, n_max)]
B2 = torch.cat([b_functions(A_env[:, n] + A_env[:, m], U_2)[:, 0] for n, m in pairs if n < m]
               + [b_functions(A_env[:, n], U_2)[:, 0] for n in range(n_max)], dim=1)   # [n_env, 40]
p = torch.stack([(A_env[:, n, l * l:(l + 1) ** 2] * A_env[:, m, l * l:(l + 1) ** 2]).sum(-1)
                 for n, m in pairs for l in range(LMAX + 1)], dim=1)                  # [n_env, n_p]
print("features:", B2.shape[1], "B-functions,", p.shape[1], "power-spectrum components;", n_env, "environments")
print("SOAP from B:", held_out_residual(B2, p), "  B from SOAP:", held_out_residual(p, B2))
assert B2.shape == p.shape and held_out_residual(B2, p) < 1e-10 and held_out_residual(p, B2) < 1e-10

# %% [markdown]
# **ν = 3 — bispectrum** $b_{l_1l_2l_3} = \sum_{m} C^{l_3 m_3}_{l_1m_1l_2m_2} A_{l_1m_1}A_{l_2m_2}A_{l_3m_3}$
# (one channel; the Clebsch–Gordan coefficient is the Wigner-3j of notebook 00 up to a constant).
# The bispectrum and the $\nu=3$ invariant B-functions span the same space:

# %%
def bispectrum(a):                                         # a: [n_env, d]
    blk = lambda l: a[:, l * l:(l + 1) ** 2]
    out = [torch.einsum("ea,eb,ec,abc->e", blk(l1), blk(l2), blk(l3), wigner_3j(l1, l2, l3, dtype=dtype))
           for l1, l2, l3 in itertools.combinations_with_replacement(range(LMAX + 1), 3)
           if l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0]
    return torch.stack(out, dim=1)                         # [n_env, n_triangles]

U_3 = coupling_basis(LMAX, 3, 0, 1)                        # [1, d, d, d, 8]
b, B3 = bispectrum(A_env[:, 1]), b_functions(A_env[:, 1], U_3)[:, 0]
print("bispectrum:", tuple(b.shape), " B:", tuple(B3.shape))
print("bispectrum from B:", held_out_residual(B3, b), "  B from bispectrum:", held_out_residual(b, B3))
assert b.shape == B3.shape and held_out_residual(B3, b) < 1e-10 and held_out_residual(b, B3) < 1e-10

# %% [markdown]
# *Line ↔ equation*: `bispectrum` is $b_{l_1l_2l_3}$ above with `wigner_3j(l1, l2, l3)` as the coupling; the
# two fits going both ways, with residuals at rounding level, show the two sets are related by an invertible
# linear map. The same holds for every $\nu$ and every $L$: MACE's B-functions are the complete, non-redundant
# ACE basis of each channel.
#
# **SNAP — the 4D bispectrum** (Bartók et al. 2010; Thompson et al. 2015). SNAP maps each neighbour, inside the
# 3D ball $r < r_c$, to a point of the 3-sphere $S^3$: the unit quaternion $(\cos\theta_0, \sin\theta_0\,\hat{\mathbf r})$ with
# $\theta_0 = \theta_0^{\max} r / r_c$, i.e. the SU(2) matrix $U^{1/2}(\mathbf r) = \cos\theta_0\, I - i \sin\theta_0\, \hat{\mathbf r}\cdot\boldsymbol\sigma$.
# It expands the neighbour density on $S^3$ in the 4D hyperspherical harmonics $U^j_{mm'}$ (Wigner matrices of
# SU(2), $j = 0, \tfrac12, 1, \dots$) and forms their bispectrum $B_{j_1 j_2 j} = \sum C\, C\, \bar U^{j} U^{j_1} U^{j_2}$: three
# factors, body order 4. A 3D rotation acts on $U^j$ by conjugation, under which its $(2j+1)^2$ components split
# into $l = 0, 1, \dots, 2j$ (each $U^j_{mm'}$ is a sum of $g_{jl}(r) Y_{lm}(\hat{\mathbf r})$ with fixed radial
# functions $g_{jl}$ of $\theta_0$). So SNAP is a special case of ACE: a fixed radial basis $R_{nl} = g_{jl}$ tied to $l$
# by $j$, with its channels $j$ coupled, truncated at $\nu = 3$. The smallest check: for $j = \tfrac12$ the
# invariant $\lVert \sum_j f_c(r_j) U^{1/2}(\mathbf r_j) \rVert_F^2$ is the $\nu = 2$ B-function combination
# $2 B_{l=0} + \tfrac{2}{\sqrt3} B_{l=1}$ of the atomic basis with radial functions $f_c \cos\theta_0$ ($l = 0$) and
# $f_c \sin\theta_0$ ($l = 1$):

# %%
theta0_max = 0.99 * math.pi
pauli = torch.tensor([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=torch.complex128)

def snap_U_half(r):                                        # Σ_j f_c(r_j) U^{1/2}(r_j): a 2×2 complex matrix
    rr = r.norm(dim=1)
    t0, w, u = theta0_max * rr / r_cut, f_c(rr), r / rr[:, None]
    U = torch.cos(t0)[:, None, None] * torch.eye(2) - 1j * torch.sin(t0)[:, None, None] * torch.einsum("ja,abc->jbc", u.to(pauli.dtype), pauli)
    return (w[:, None, None] * U).sum(0)

def snap_A(r):                                             # l = 0: f_c cos θ0 ; l = 1: f_c sin θ0 Y_1m
    rr = r.norm(dim=1, keepdim=True)
    t0, w = theta0_max * rr / r_cut, f_c(rr)
    Y = spherical_harmonics(1, r)                          # [n_nb, 4]
    return torch.cat([(w * torch.cos(t0) * Y[:, :1]).sum(0), (w * torch.sin(t0) * Y[:, 1:]).sum(0)])

norm2 = torch.stack([snap_U_half(r).abs().pow(2).sum() for r in envs])
B_snap = b_functions(torch.stack([snap_A(r) for r in envs]), coupling_basis(1, 2, 0, 1))[:, 0]   # [n_env, 2]
combo = 2 * B_snap[:, 0] + 2 / math.sqrt(3) * B_snap[:, 1]
print("max |‖Σ f_c U^½‖² − (2 B_0 + 2/√3 B_1)| / max ‖…‖² =", ((norm2 - combo).abs().max() / norm2.max()).item())
assert torch.allclose(norm2, combo, rtol=1e-12, atol=1e-12)
Q = random_O3(dtype=dtype, generator=gen)
Q = Q * torch.det(Q)                                       # a proper rotation
print("invariant under a rotation of the neighbours:",
      torch.allclose(snap_U_half(envs[0] @ Q.T).abs().pow(2).sum(), norm2[0], rtol=1e-12))

# %% [markdown]
# **Summary** — `coupling_basis(lmax, ν, L, p)` gives $C^{LM}_{\eta,\mathbf{lm}}$ of Eq. (10): equivariant,
# symmetric, independent, counted exactly. Products of $A$ are the body-ordered sums of Eq. (7) at the cost of
# one sum over neighbours, and the classic descriptors (ACSF, MTP, SOAP, the bispectrum, SNAP) are special
# cases of these B-functions. Next: notebook 04 fits a linear ACE potential on these features.
