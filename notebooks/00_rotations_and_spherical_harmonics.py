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
# # 00 — Rotations and spherical harmonics
#
# **What you will learn**
# - what *equivariance* means, and how to check it numerically (`minimace.testing.assert_equivariant`);
# - the real spherical harmonics $Y_l^m$ that MACE uses, derived with sympy from the textbook complex ones,
#   and the exact change of basis (Condon–Shortley phase, complex → real, axis relabelling) to e3nn's convention;
# - the Wigner matrices $D^l(R)$ that rotate them, and the parity $(-1)^l$;
# - Clebsch–Gordan coupling of two vectors into $0 \oplus 1 \oplus 2$ (scalar, pseudovector, traceless tensor).
#
# **Prerequisites**: linear algebra (rotation matrices), a first look at spherical coordinates. No group theory.
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697) — the one-particle basis
# $\phi_{klm} = R_{kl}(r_{ij})\,Y_l^m(\hat{\mathbf r}_{ij})$ and the atomic basis (Eq. 8) use $Y_l^m$; the
# symmetric basis (Eq. 10) couples them with generalized Clebsch–Gordan coefficients built from the 3j tensors below.
# Background: Drautz, *Atomic cluster expansion*, PRB 99, 014104 (2019).

# %%
import math
import os

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch

from minimace.so3 import (Irreps, clebsch_gordan, irreps_D, random_O3, random_rotation, real_to_complex_basis,
                          spherical_harmonics, sympy_real_spherical_harmonic,
                          sympy_textbook_real_spherical_harmonic, wigner_3j, wigner_D)
from minimace.so3.spherical_harmonics import x, y, z
from minimace.testing import assert_equivariant

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)

# %% [markdown]
# ## 1. Equivariance
#
# A function $f$ of atomic positions is **equivariant** to a group element $g$ when transforming the input
# and then applying $f$ equals applying $f$ and then transforming the output:
#
# $$ f(g \cdot \mathbf x) = D(g)\, f(\mathbf x), $$
#
# where $D(g)$ is how the output transforms: $D = 1$ for an energy (*invariant*), $D = R$ for forces,
# $R\,\sigma R^\top$ for a stress. For the group O(3) we draw random rotations $R$ (det $+1$) and
# reflections (det $-1$) uniformly (Haar measure).

# %%
R = random_rotation(dtype=dtype, generator=gen)          # [3, 3], det +1
P = random_O3(8, dtype=dtype, generator=gen)             # [8, 3, 3], det ±1
positions = torch.randn(5, 3, dtype=dtype, generator=gen)

def centre_of_mass_offsets(pos):                         # an equivariant function: vectors -> vectors
    return pos - pos.mean(0)

lhs = centre_of_mass_offsets(positions @ R.T)            # f(R x)
rhs = centre_of_mass_offsets(positions) @ R.T            # R f(x)
print("R Rᵀ = 1:", torch.allclose(R @ R.T, torch.eye(3, dtype=dtype)), " det R =", torch.det(R).item())
print("dets of the O(3) samples:", torch.det(P).round().tolist())
print("max |f(Rx) - R f(x)| =", (lhs - rhs).abs().max().item())

# %% [markdown]
# *Line ↔ equation*: `lhs` is $f(R\mathbf x)$, `rhs` is $D(R) f(\mathbf x)$ with $D(R) = R$ acting on each row.

# %%
assert (lhs - rhs).abs().max() < 1e-12
assert torch.allclose(torch.det(P).abs(), torch.ones(8, dtype=dtype))

# %% [markdown]
# `assert_equivariant` does this for rotations, reflections, translations and permutations of atoms at once.
# Each input and output gets a *kind*: `"cartesian_points"` (rotated **and** translated), `"cartesian_vectors"`,
# `"cartesian_matrix"`, an irreps string such as `"0e"`, or `None`. A function that is *not* equivariant must
# fail — the negative control that makes the check worth something. Measuring positions from the origin
# breaks translation symmetry:

# %%
report = assert_equivariant(centre_of_mass_offsets, (positions,), ("cartesian_points",), "cartesian_vectors",
                            atoms_in=("atoms",), atoms_out="atoms")
print(report)
try:
    assert_equivariant(lambda pos: pos, (positions,), ("cartesian_points",), "cartesian_vectors")
    raise RuntimeError("the check should have failed")
except AssertionError as err:
    message = str(err)
print(message)
assert "FAIL translation" in message and "ok   rotation" in message

# %% [markdown]
# ## 2. From sympy's complex $Y_l^m$ to real spherical harmonics
#
# The textbook harmonics (sympy's `Ynm`, Condon–Shortley phase $(-1)^m$ included) are complex:
# $Y_l^m(\theta,\varphi) = N_{lm} P_l^m(\cos\theta)\, e^{im\varphi}$. Neural networks want real numbers, so one
# takes the real and imaginary parts (the "real form"):
#
# $$ Y_{lm} = \begin{cases} \sqrt2\,(-1)^m\, \mathrm{Im}\, Y_l^{|m|} & m<0\\ Y_l^0 & m=0 \\
#    \sqrt2\,(-1)^m\, \mathrm{Re}\, Y_l^{m} & m>0 \end{cases}
#    \qquad\Longleftrightarrow\qquad Y^{\mathbb C}_l = Q_l\, Y^{\mathbb R}_l .$$
#
# On the unit sphere, $\cos\theta = Z$ and $\sin\theta\, e^{i\varphi} = X + iY$, so every $Y_{lm}$ is a
# polynomial of degree $l$ in $X, Y, Z$.

# %%
theta, phi = sp.symbols("theta phi", real=True)
print("sympy Y_2^1 =", sp.Ynm(2, 1, theta, phi).expand(func=True))
for m in range(-2, 3):
    print(f"textbook real r²·Y_2,{m:+d} =", sympy_textbook_real_spherical_harmonic(2, m))
Q1 = real_to_complex_basis(1)  # includes e3nn's extra phase (-i)^l
Q1

# %% [markdown]
# *Line ↔ equation*: `sympy_textbook_real_spherical_harmonic(l, m)` is the case formula above with $Z$ the polar
# axis; `real_to_complex_basis(l)` is $Q_l$ times e3nn's phase $(-i)^l$ (a global phase per $l$: it changes
# nothing for the harmonics, and makes the Clebsch–Gordan tensors of section 4 real). $Q_l$ is unitary:

# %%
for l in range(4):
    Q = real_to_complex_basis(l)
    assert sp.simplify(Q.H * Q) == sp.eye(2 * l + 1)
# the case formula really is Re / Im of sympy's Ynm, checked at a point (θ, φ) = (0.7, 1.9)
pt = {x: math.sin(0.7) * math.cos(1.9), y: math.sin(0.7) * math.sin(1.9), z: math.cos(0.7)}
ynm = complex(sp.Ynm(3, 2, theta, phi).evalf(subs={theta: 0.7, phi: 1.9}))
assert abs(float(sympy_textbook_real_spherical_harmonic(3, 2).subs(pt)) - math.sqrt(2) * ynm.real) < 1e-12
assert abs(float(sympy_textbook_real_spherical_harmonic(3, -2).subs(pt)) - math.sqrt(2) * ynm.imag) < 1e-12

# %% [markdown]
# ### e3nn's convention (the one of MACE)
# Two more steps give the basis of e3nn and of the official MACE implementation, so that its weights transfer:
# 1. **"component" normalisation**: multiply by $\sqrt{4\pi}$, so that $\sum_m Y_{lm}(\hat r)^2 = 2l+1$;
# 2. **axis relabelling** $(X, Y, Z) \to (z, x, y)$: then $Y_1 = \sqrt3\,(x, y, z)$ in this order and
#    $y$ is the polar axis. The relabelling is a cyclic permutation — a rotation — so nothing else changes.

# %%
for l in range(3):
    print(f"l={l}:", [sympy_real_spherical_harmonic(l, m) for m in range(-l, l + 1)])
assert [sympy_real_spherical_harmonic(1, m) for m in (-1, 0, 1)] == [sp.sqrt(3) * x, sp.sqrt(3) * y, sp.sqrt(3) * z]
assert sympy_real_spherical_harmonic(2, 0).free_symbols <= {x, y, z}
assert sp.diff(sympy_real_spherical_harmonic(3, 0).subs({x: 0, z: 0}), y) != 0  # Y_l0 lives on the y axis

# %% [markdown]
# `spherical_harmonics(lmax, vectors)` evaluates exactly these polynomials (coefficients rounded once from the
# exact sympy values) for a batch of vectors — it runs on every edge of every structure during training.

# %%
vectors = torch.randn(1000, 3, dtype=dtype, generator=gen)
Y = spherical_harmonics(3, vectors)                              # [1000, 16] = l 0..3 concatenated
unit = vectors / vectors.norm(dim=-1, keepdim=True)
poly = sp.lambdify((x, y, z), sympy_real_spherical_harmonic(3, -2))
print(Y.shape, Irreps.spherical_harmonics(3))

# %% [markdown]
# *Line ↔ equation*: column `l*l + l + m` of `Y` is $Y_{lm}(\hat r)$; `poly` is the same polynomial straight from sympy.

# %%
assert torch.allclose(Y[:, 9 + 3 - 2], torch.tensor(poly(*unit.T.numpy())), atol=1e-12)
for l in range(4):  # component normalisation: Σ_m Y_lm² = 2l + 1 at every point
    assert torch.allclose(Y[:, l * l:(l + 1) ** 2].pow(2).sum(-1), torch.full((1000,), 2.0 * l + 1, dtype=dtype))

# %% [markdown]
# ## 3. Rotating spherical harmonics: Wigner D and parity
#
# Rotating the argument mixes the $2l+1$ harmonics of one $l$ linearly, never different $l$:
#
# $$ Y_l(R\hat r) = D^l(R)\, Y_l(\hat r), \qquad D^l_{mm'}(R) = \frac{1}{4\pi}\int Y_{lm}(R\hat r)\,Y_{lm'}(\hat r)\,d\Omega ,
#    \qquad Y_l(-\hat r) = (-1)^l\, Y_l(\hat r). $$
#
# The integral (orthonormality) is computed exactly by a quadrature in `wigner_D`.

# %%
l = 3
D = wigner_D(l, R)                                               # [7, 7]
lhs = spherical_harmonics(l, vectors @ R.T)[:, l * l:]           # Y_l(R r)
rhs = spherical_harmonics(l, vectors)[:, l * l:] @ D.T           # D(R) Y_l(r)
parity = spherical_harmonics(l, -vectors)[:, l * l:] / spherical_harmonics(l, vectors)[:, l * l:]
print("max |Y(Rr) - D Y(r)| =", (lhs - rhs).abs().max().item(), "  Y(-r)/Y(r) ∈", parity.round().unique().tolist())

# %% [markdown]
# *Line ↔ equation*: `D` is $D^l(R)$; `lhs`/`rhs` are the two sides of $Y_l(R\hat r) = D^l(R) Y_l(\hat r)$;
# `parity` is $(-1)^l = -1$ for $l = 3$. $D$ is orthogonal and a representation: $D(R_1R_2) = D(R_1)D(R_2)$.

# %%
R2 = random_rotation(dtype=dtype, generator=gen)
assert (lhs - rhs).abs().max() < 1e-12
assert torch.allclose(parity, -torch.ones_like(parity))
assert torch.allclose(D @ D.T, torch.eye(7, dtype=dtype), atol=1e-12)
assert torch.allclose(wigner_D(l, R @ R2), wigner_D(l, R) @ wigner_D(l, R2), atol=1e-12)
assert torch.allclose(wigner_D(1, R), R, atol=1e-12)              # l = 1 is just the rotation matrix

# %% [markdown]
# Features of MACE are direct sums of such irreps with a parity label: `"0e+1o+2e"` means a scalar (even), a
# vector (odd: flips under inversion) and an $l=2$ even block. `irreps_D` builds the block-diagonal $D$,
# with the extra sign $p$ for det $R = -1$. Spherical harmonics are of type `"0e+1o+2e+3o"`:

# %%
report = assert_equivariant(lambda v: spherical_harmonics(3, v), (vectors,), ("1o",), Irreps.spherical_harmonics(3))
print(report)
print("inversion on 0e+1o+1e:", torch.diagonal(irreps_D("0e+1o+1e", -torch.eye(3, dtype=dtype))).round().tolist())
assert report.max_error < 1e-12

# %% [markdown]
# ## 4. Clebsch–Gordan coupling: vector ⊗ vector = 0 ⊕ 1 ⊕ 2
#
# The product of two irreps $l_1 \otimes l_2$ splits into irreps $|l_1-l_2| \le L \le l_1+l_2$ with the
# Clebsch–Gordan coefficients, here real and in the same basis:
#
# $$ w_{LM} = \sum_{m_1 m_2} C^{LM}_{l_1 m_1, l_2 m_2}\, u_{m_1} v_{m_2},
#    \qquad C_{real} = \sum Q^{(l_1)} Q^{(l_2)} \overline{Q^{(l_3)}}\,\langle l_1 m_1 l_2 m_2 | LM\rangle .$$
#
# For two vectors ($l_1 = l_2 = 1$) the three pieces are the dot product, the cross product and the
# symmetric traceless part of $u v^\top$. (`wigner_3j` is the same tensor with Frobenius norm 1 — e3nn's.)

# %%
u, v = torch.randn(3, dtype=dtype, generator=gen), torch.randn(3, dtype=dtype, generator=gen)
w = {L: torch.einsum("abc,a,b->c", clebsch_gordan(1, 1, L), u, v) for L in (0, 1, 2)}   # [2L+1] each
outer = torch.outer(u, v)
sym_traceless = (outer + outer.T) / 2 - torch.trace(outer) / 3 * torch.eye(3, dtype=dtype)
for L, wL in w.items():
    print(f"L={L}:", wL.numpy().round(4))
print("u·v/√3 =", (u @ v / math.sqrt(3)).item(), "  u×v/√2 =", (torch.linalg.cross(u, v) / math.sqrt(2)).numpy().round(4))

# %% [markdown]
# *Line ↔ equation*: `clebsch_gordan(1, 1, L)[a, b, c]` is $C^{Lc}_{1a,1b}$ and `w[L]` is $w_{L}$. The checks:
# $w_0 = u\cdot v/\sqrt3$, $w_1 = u\times v/\sqrt2$ (a pseudovector `1e`: even under inversion),
# $|w_2| = |\mathrm{sym}_0(u v^\top)|$, and nothing is lost: $\sum_L |w_L|^2 = |u|^2 |v|^2$.

# %%
assert torch.allclose(w[0], u @ v / math.sqrt(3) * torch.ones(1, dtype=dtype))
cross = torch.linalg.cross(u, v) / math.sqrt(2)
assert torch.allclose(w[1], cross)
assert torch.allclose(w[2].norm(), sym_traceless.norm())
assert torch.allclose(sum(wL.pow(2).sum() for wL in w.values()), u.pow(2).sum() * v.pow(2).sum())
assert torch.allclose(wigner_3j(1, 1, 2), clebsch_gordan(1, 1, 2) / math.sqrt(5))

# %% [markdown]
# The coupled pieces transform as irreps: rotating $u$ and $v$ rotates $w_L$ by $D^L(R)$. Equivalently, the
# 3j tensor is invariant: $C_{abc} = \sum D^{1}_{aa'}D^{1}_{bb'}D^{2}_{cc'} C_{a'b'c'}$. And under
# inversion $w_1$ does *not* flip: $1o \otimes 1o \to 1e$.

# %%
couple = lambda a, b: torch.einsum("abc,...a,...b->...c", clebsch_gordan(1, 1, 2), a, b)  # noqa: E731
assert_equivariant(couple, (u, v), ("1o", "1o"), "2e")
C = wigner_3j(1, 1, 2)
C_rot = torch.einsum("abc,ia,jb,kc->ijk", C, wigner_D(1, R), wigner_D(1, R), wigner_D(2, R))
print("max |D⊗D⊗D C - C| =", (C_rot - C).abs().max().item())
assert (C_rot - C).abs().max() < 1e-12
w1_inverted = torch.einsum("abc,a,b->c", clebsch_gordan(1, 1, 1), -u, -v)
assert torch.allclose(w1_inverted, w[1])

# %% [markdown]
# ## 5. See them: $Y_l^m$ on the sphere
#
# Pick $l$ and $m$: the surface is $|Y_{lm}(\hat r)|$ in direction $\hat r$, coloured by its sign
# (red +, blue −). Note the polar axis $y$: $Y_{l0}$ is symmetric about it.

# %%
n_grid = 30 if QUICK else 80
th, ph = torch.meshgrid(torch.linspace(0, math.pi, n_grid, dtype=dtype),
                        torch.linspace(0, 2 * math.pi, 2 * n_grid, dtype=dtype), indexing="ij")
sphere = torch.stack([th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()], dim=-1)  # [n, 2n, 3]

def show(l=2, m=0):
    m = max(-l, min(l, m))
    values = spherical_harmonics(l, sphere)[..., l * l + l + m]      # [n, 2n]
    surface = (values.abs()[..., None] * sphere).numpy()
    colours = plt.cm.coolwarm(0.5 + 0.5 * values.numpy() / values.abs().max().item())
    fig = plt.figure(figsize=(4, 4))
    ax = fig.add_subplot(projection="3d")
    ax.plot_surface(*np.moveaxis(surface, -1, 0), facecolors=colours, rstride=1, cstride=1, linewidth=0)
    ax.set(xlabel="x", ylabel="y", zlabel="z", title=f"$Y_{{{l},{m}}}$")
    plt.show()
    return values

l_slider = widgets.IntSlider(value=2, min=0, max=6, description="l")
m_slider = widgets.IntSlider(value=0, min=-2, max=2, description="m")

def limit_m(change):
    """-l <= m <= l: the range of m follows l (a larger |m| is clamped by the slider itself)."""
    m_slider.min, m_slider.max = -change["new"], change["new"]

l_slider.observe(limit_m, names="value")
values = show(l_slider.value, m_slider.value)                       # the static figure (also shown when not live)
widgets.interactive(show, l=l_slider, m=m_slider)

# %% [markdown]
# *Line ↔ equation*: `values` is $Y_{lm}$ on a $(\theta, \varphi)$ grid; the quick check below uses it to
# verify once more the normalisation $\frac{1}{4\pi}\int Y_{lm}^2\, d\Omega = 1$ (midpoint rule on a coarse grid, so
# only approximately: the value is printed).

# %% [markdown]
# The $m$ slider cannot leave $[-l, l]$: lowering $l$ below $|m|$ moves $m$ with it. Check, driving the sliders from
# code as a user would:

# %%
l_slider.value, m_slider.value = 3, -3
l_slider.value = 1
print("after l = 3, m = -3, then l = 1:  m =", m_slider.value, " range", (m_slider.min, m_slider.max))
assert (m_slider.min, m_slider.max, m_slider.value) == (-1, 1, -1)
l_slider.value = 4
assert (m_slider.min, m_slider.max) == (-4, 4)

# %%
plt.close("all")
values = spherical_harmonics(2, sphere)[..., 4 + 1]                  # Y_{2,1}
d_omega = th.sin() * (math.pi / (n_grid - 1)) * (2 * math.pi / (2 * n_grid - 1))
mean_square = (values.pow(2) * d_omega).sum() / (4 * math.pi)
print("(1/4π) ∫ Y_21² dΩ ≈", mean_square.item())
assert abs(mean_square.item() - 1) < 0.1

# %% [markdown]
# **Summary.** `spherical_harmonics` (sympy-derived, e3nn basis), `wigner_D`/`irreps_D` (how features rotate),
# `clebsch_gordan`/`wigner_3j` (how to couple them) and `assert_equivariant` (how to check any stage) are the
# whole symmetry toolkit the next notebooks build MACE from.
