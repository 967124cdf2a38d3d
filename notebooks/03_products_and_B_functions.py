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

# %% [markdown]
# # 03 — Products and B-functions: the symmetric basis of MACE and ACE
#
# **What you will learn**
# - the *product basis* $\mathbf A_{i,k\mathbf{lm}} = \prod_{\xi=1}^{\nu} A_{i,k l_\xi m_\xi}$ (MACE Eq. 9), a
#   symmetric tensor, and why only the symmetric part of a coupling tensor matters;
# - the *generalized Clebsch–Gordan coefficients* $C^{LM}_{\eta,\mathbf{lm}}$ of the B-functions
#   $B_{i,\eta kLM} = \sum_{\mathbf{lm}} C^{LM}_{\eta,\mathbf{lm}} \mathbf A_{i,k\mathbf{lm}}$ (MACE Eq. 10):
#   how `minimace.symmetric.coupling_basis` builds an exact, linearly independent set of them;
# - how many B-functions there are (an exact count), checked against closed formulas;
# - an exact sympy proof that a B-function is rotation invariant;
# - the special cases of ACE: two-body (ACSF-like) radial sums for $\nu=1$, the SOAP power spectrum for
#   $\nu=2$, the bispectrum for $\nu=3$ — each spanned by the B-functions to ~1e-12.
#
# **Prerequisites**: notebooks 00 (spherical harmonics, Wigner D, Clebsch–Gordan) and 02 (the atomic basis $A_i$).
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697), Eqs. (9)–(10);
# Drautz, *Atomic cluster expansion*, PRB 99, 014104 (2019); Bartók, Kondor, Csányi, *On representing chemical
# environments*, PRB 87, 184115 (2013) (power spectrum and bispectrum).

# %%
import itertools
import math
import os

import sympy as sp
import torch

from minimace.radial import BesselBasis, PolynomialCutoff
from minimace.so3 import irreps_D, random_O3, spherical_harmonics, sympy_real_spherical_harmonic, wigner_3j
from minimace.so3.spherical_harmonics import x, y, z
from minimace.symmetric import (b_functions, count_couplings, coupling_basis, coupling_block, degree_multisets,
                                product_basis, to_sympy)
from minimace.testing import assert_equivariant

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)
LMAX = 3
IRREPS = "+".join(f"1x{l}{'eo'[l % 2]}" for l in range(LMAX + 1))   # spherical harmonics: 0e+1o+2e+3o
d = (LMAX + 1) ** 2

# %% [markdown]
# ## 1. The product basis (Eq. 9)
#
# For one channel $k$, the atomic basis $A_{i,k}$ is a vector of $d = (l_{\max}+1)^2$ numbers
# (the irreps $0e + 1o + 2e + 3o$). Its $\nu$-fold product
# $$\mathbf A_{i,k\,\mathbf{lm}} = \prod_{\xi=1}^{\nu} A_{i,k\,l_\xi m_\xi}$$
# is a tensor with $d^\nu$ entries, **symmetric** under any permutation of its indices, so only
# $\binom{d+\nu-1}{\nu}$ of them are distinct. This is the "density trick" of ACE: a $\nu$-fold sum over
# neighbours becomes a product of one-fold sums.

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
# *Line ↔ equation*: `product_basis(A, 3)[i, j, k]` $= A_i A_j A_k$ is $\mathbf A_{\mathbf{lm}}$ of Eq. (9)
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
#    candidate has a residual $< 10^{-10}$ while every kept one has $> 10^{-3}$ (measured: $7\cdot10^{-16}$
#    vs $0.13$).
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
# ## 4. An exact proof with sympy (ν = 2, l ≤ 2, two neighbours)
#
# For $\nu = 2$ the coupling coefficients are square roots of rationals; `to_sympy` recognises them exactly.
# For $L = 0$ they are $\delta_{mm'}/\sqrt{2l+1}$:

# %%
U2 = to_sympy(coupling_basis(2, 2, 0, 1))                  # [1, 9, 9, 3] exact
print([U2[0, l * l, l * l, l] for l in range(3)])
assert [U2[0, l * l, l * l, l] for l in range(3)] == [1, 1 / sp.sqrt(3), 1 / sp.sqrt(5)]

# %% [markdown]
# Two neighbours at symbolic positions $\mathbf r_1, \mathbf r_2$; the atomic basis uses the solid
# harmonics $r^l Y_{lm}(\hat{\mathbf r})$ (exact polynomials). Rotate both by
# $R = R_z(\alpha) R_y(\beta)$ with symbols $c_a = \cos\alpha$, $s_a = \sin\alpha$, … and reduce with
# $s^2 + c^2 = 1$: the difference of the B-functions is **exactly** zero.

# %%
ca, sa, cb, sb = sp.symbols("c_a s_a c_b s_b", real=True)
Rot = sp.Matrix([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]]) * sp.Matrix([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
r1, r2 = sp.Matrix(sp.symbols("x1 y1 z1", real=True)), sp.Matrix(sp.symbols("x2 y2 z2", real=True))
Ylm = [sympy_real_spherical_harmonic(l, m) for l in range(3) for m in range(-l, l + 1)]

def A_sym(vectors):                                         # A_lm = Σ_j r_j^l Y_lm(r̂_j)
    return [sum(Y.subs({x: v[0], y: v[1], z: v[2]}, simultaneous=True) for v in vectors) for Y in Ylm]

def B_sym(a):                                               # Eq. (10), ν = 2, L = 0
    return [sum(U2[0, i, j, e] * a[i] * a[j] for i in range(9) for j in range(9)) for e in range(3)]

def reduce_trig(expr):                                      # s^k -> s^(k mod 2) (1 - c^2)^(k // 2)
    for s, c in [(sa, ca), (sb, cb)]:
        poly = sp.Poly(sp.expand(expr), s)
        expr = sp.expand(sum(co * s ** (k % 2) * (1 - c**2) ** (k // 2) for (k,), co in poly.terms()))
    return expr

diffs = [reduce_trig(b1 - b0) for b0, b1 in zip(B_sym(A_sym([r1, r2])), B_sym(A_sym([Rot * r1, Rot * r2])))]
print("B(R r) - B(r) =", diffs)
assert diffs == [0, 0, 0]

# %% [markdown]
# *Line ↔ equation*: `B_sym` is Eq. (10) with the exact $C^{00}_{\eta, l m l m'}$; the rotation acts on the
# neighbour positions only. Negative control — a coefficient changed on one $m$ breaks the invariance:

# %%
broken = [sum(U2[0, i, j, 1] * a[i] * a[j] for i in range(9) for j in range(9)) + a[1] ** 2
          for a in (A_sym([r1, r2]), A_sym([Rot * r1, Rot * r2]))]
assert reduce_trig(broken[1] - broken[0]) != 0

# %% [markdown]
# ## 5. Special cases of ACE: ACSF, SOAP, bispectrum
#
# Random environments: 6–12 neighbours in a ball of radius 4.5 Å, radial functions
# $R_n(r) = j_n(r) f_{\rm cut}(r)$ (Bessel × envelope, `minimace.radial`),
# $A_{n,lm} = \sum_j R_n(r_j) Y_{lm}(\hat{\mathbf r}_j)$ with channels $n$.

# %%
n_env, n_max, r_cut = (100 if QUICK else 400), 4, 5.0
bessel, cutoff = BesselBasis(r_cut, n_max).double(), PolynomialCutoff(r_cut, 5)

def environment_A(n_neighbours):
    r = torch.randn(n_neighbours, 3, dtype=dtype, generator=gen)
    r = r / r.norm(dim=1, keepdim=True) * (1 + 3.5 * torch.rand(n_neighbours, 1, dtype=dtype, generator=gen))
    R_n = bessel(r.norm(dim=1, keepdim=True)) * cutoff(r.norm(dim=1, keepdim=True))   # [n_nb, n_max]
    return R_n.T @ spherical_harmonics(LMAX, r), R_n.sum(0)                            # [n_max, d], [n_max]

envs = [environment_A(int(torch.randint(6, 13, (1,), generator=gen))) for _ in range(n_env)]
A_env = torch.stack([a for a, _ in envs])                  # [n_env, n_max, d]
print("A:", tuple(A_env.shape))

# %% [markdown]
# **ν = 1 — two-body (ACSF-like).** The only invariant is the $l=0$ component, $\sum_j R_n(r_j)$: a radial
# symmetry function of Behler–Parrinello type ($G^2 = \sum_j e^{-\eta(r_j - r_s)^2} f_c(r_j)$ with another
# radial basis).

# %%
B1 = b_functions(A_env, coupling_basis(LMAX, 1, 0, 1))[..., 0, 0]   # [n_env, n_max]
radial_sums = torch.stack([s for _, s in envs])                      # Σ_j R_n(r_j)
assert torch.allclose(B1, radial_sums, atol=1e-12)
print("nu=1 B-functions = radial sums, max diff", (B1 - radial_sums).abs().max().item())

# %% [markdown]
# **ν = 2 — SOAP power spectrum** $p_{nn'l} = \sum_m A_{nlm} A_{n'lm}$.
# The B-functions are per channel ($n = n'$), as in MACE. The cross terms $n \ne n'$ come from the same
# B-functions evaluated on mixed channels, by polarisation:
# $B(A_n + A_{n'}) - B(A_n) - B(A_{n'}) = 2\sum C A_n A_{n'}$ — which is what MACE's channel mixing provides.
# We reconstruct $p$ from B by least squares over all environments:

# %%
def lstsq_residual(features, targets):                    # relative error of the best linear fit
    sol = torch.linalg.lstsq(features, targets).solution
    return ((features @ sol - targets).norm() / targets.norm()).item()

U_2 = coupling_basis(LMAX, 2, 0, 1)                        # [1, d, d, lmax+1]
pairs = [(n, m) for n in range(n_max) for m in range(n, n_max)]
B2 = torch.cat([b_functions(A_env[:, n] + A_env[:, m], U_2)[:, 0] for n, m in pairs if n < m]
               + [b_functions(A_env[:, n], U_2)[:, 0] for n in range(n_max)], dim=1)   # [n_env, 40]
p = torch.stack([(A_env[:, n, l * l:(l + 1) ** 2] * A_env[:, m, l * l:(l + 1) ** 2]).sum(-1)
                 for n, m in pairs for l in range(LMAX + 1)], dim=1)                  # [n_env, n_p]
print("features:", B2.shape[1], "B-functions,", p.shape[1], "power-spectrum components;", n_env, "environments")
print("SOAP from B:", lstsq_residual(B2, p), "  B from SOAP:", lstsq_residual(p, B2))
assert B2.shape == p.shape and lstsq_residual(B2, p) < 1e-10 and lstsq_residual(p, B2) < 1e-10

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
print("bispectrum from B:", lstsq_residual(B3, b), "  B from bispectrum:", lstsq_residual(b, B3))
assert b.shape == B3.shape and lstsq_residual(B3, b) < 1e-10 and lstsq_residual(b, B3) < 1e-10

# %% [markdown]
# *Line ↔ equation*: `bispectrum` is $b_{l_1l_2l_3}$ above with `wigner_3j(l1, l2, l3)` as the coupling; the
# two least-squares fits going both ways with relative residual ~1e-13 show the two sets are related by an
# invertible linear map. The same holds for every $\nu$ and every $L$: MACE's B-functions are the complete,
# non-redundant ACE basis of each channel.
#
# **Summary** — `coupling_basis(lmax, ν, L, p)` gives $C^{LM}_{\eta,\mathbf{lm}}$ of Eq. (10): equivariant,
# symmetric, independent, counted exactly. Next: notebook 04 fits a linear ACE potential on these features.
