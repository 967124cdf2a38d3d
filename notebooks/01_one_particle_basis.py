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
# # 01 — The one-particle basis φ
#
# **What you will learn**
# - the radial features of MACE: Bessel functions $j_n(r)$ times a smooth polynomial envelope $f_p(r)$;
# - the learnable radial functions $R_{kl}(r) = \mathrm{MLP}(j(r) f_p(r))$ and why they vanish smoothly at the cutoff
#   (proved with sympy: orthonormality by `sympy.integrate`, the smooth cutoff by `sympy.diff`);
# - the angular part $Y_l^m(\hat{\mathbf r}_{ij})$ and its rotation property, checked with `assert_equivariant`;
# - the chemical embedding of the neighbour's element $z_j$;
# - how they combine into $\phi_{k l m}(\mathbf r_{ij}, z_j)$, the input of the atomic basis (notebook 02).
#
# **Prerequisites**: notebook 00 (real spherical harmonics, Wigner D).
#
# **Paper**: Batatia et al., *MACE* (NeurIPS 2022, arXiv:2206.07697 v2): φ is the summand of the first-layer
# atomic basis, Eq. (9) (and sits inside the sum of Eq. (8) in later layers); the radial basis is Appendix A.5.
# The envelope is from Klicpera et al., *DimeNet* (ICLR 2020), their Eq. (8).

# %%
import math
import os

import ipywidgets as widgets
import matplotlib.pyplot as plt
import sympy as sp
import torch

from minimace.one_particle import ChemicalEmbedding, EdgeEmbedding
from minimace.radial import BesselBasis, PolynomialCutoff, RadialMLP, sympy_bessel, sympy_envelope
from minimace.so3 import Irreps, spherical_harmonics
from minimace.testing import assert_equivariant

QUICK = os.environ.get("MINIMACE_QUICK", "0") == "1"
dtype = torch.float64
torch.set_default_dtype(dtype)
torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)
r_max, num_bessel, p = 5.0, 8, 5

# %% [markdown]
# ## 1. Bessel functions
#
# $$ j_n(r) = \sqrt{\frac{2}{r_c}}\, \frac{\sin(n\pi r / r_c)}{r}, \qquad n = 1, \dots, n_\text{bessel}.$$
# They are the radial eigenfunctions of the Laplacian in a ball of radius $r_c$ that vanish on its
# surface, hence orthonormal with the weight $r^2$: $\int_0^{r_c} j_n(r) j_{n'}(r)\, r^2\, dr = \delta_{nn'}$.
# A proof with sympy, for **every** pair of integers $n, n' \ge 1$ and every $r_c > 0$:

# %%
r_s, rc_s = sp.Symbol("r", positive=True), sp.Symbol("r_c", positive=True)
n_s, m_s = sp.symbols("n n'", integer=True, positive=True)
gram = sp.integrate(sympy_bessel(n_s) * sympy_bessel(m_s) * r_s**2, (r_s, 0, rc_s))
print("∫ j_n j_n' r² dr =", gram)
assert gram.subs({n_s: 3, m_s: 3}) == 1 and gram.subs({n_s: 3, m_s: 5}) == 0

bessel = BesselBasis(r_max, num_bessel)
r = torch.linspace(1e-3, r_max, 2001)[:, None]              # [n_points, 1]
j = bessel(r)                                              # [n_points, n_bessel]
exact = torch.stack([torch.as_tensor(sp.lambdify(r_s, sympy_bessel(n, r_max=sp.Float(r_max)))(r[:, 0].numpy()))
                     for n in range(1, num_bessel + 1)], dim=1)
print("shape of j(r):", tuple(j.shape), "  max |BesselBasis - sympy formula| =", (j - exact).abs().max().item())
assert torch.allclose(j, exact, rtol=1e-12, atol=1e-12)

# %% [markdown]
# *Line ↔ equation*: `sympy_bessel(n)` is $j_n(r)$ with symbolic $r$, $r_c$; `sympy.integrate` returns
# $\delta_{nn'}$ as a `Piecewise` over the integer symbols. `bessel(r)[:, n-1]`, the torch module the model uses,
# evaluates that same formula (the difference printed is rounding).
#
# ## 2. The polynomial envelope
#
# $$ f_p(x) = 1 - \tfrac{(p+1)(p+2)}{2} x^p + p(p+2) x^{p+1} - \tfrac{p(p+1)}{2} x^{p+2},\qquad x = r/r_c,$$
# and $f_p = 0$ for $r \ge r_c$. It equals 1 at $r = 0$, and $f$, $f'$, $f''$ vanish at $r_c$: energies and
# forces stay smooth when a neighbour crosses the cutoff. Proved with `sympy.diff` for a symbolic $r_c$:

# %%
f_sym = sympy_envelope(p)                                  # f_p(r / r_c), symbols r and r_c
derivatives = [sp.simplify(sp.diff(f_sym, r_s, k).subs(r_s, rc_s)) for k in range(4)]
print("f(0) =", f_sym.subs(r_s, 0), "  d^k f / dr^k at r_c, k = 0..3:", derivatives)
assert f_sym.subs(r_s, 0) == 1 and derivatives[:3] == [0, 0, 0] and derivatives[3] != 0

cutoff = PolynomialCutoff(r_max, p)
f_exact = torch.as_tensor(sp.lambdify(r_s, sympy_envelope(p, r_max=sp.Float(r_max)))(r[:, 0].numpy()))
print("max |PolynomialCutoff - sympy formula| =", (cutoff(r[:, 0]) - f_exact).abs().max().item())
assert torch.allclose(cutoff(r[:, 0]), f_exact, rtol=1e-12, atol=1e-12)
assert cutoff(torch.tensor([r_max + 0.1])).item() == 0.0

# %% [markdown]
# *Line ↔ equation*: `sympy_envelope(p)` is $f_p(r/r_c)$; `sp.diff(f, r, k)` at $r = r_c$ is exactly zero for
# $k = 0, 1, 2$ (and not for $k = 3$: the envelope is $C^2$, no more). `cutoff(r)`, the torch module, evaluates
# the same polynomial inside $r_c$ and is 0 beyond.
#
# Play with the cutoff and the number of radial functions (a live widget in Jupyter):

# %%
def plot_radial(r_max=5.0, num_bessel=4):
    rr = torch.linspace(0.05, r_max, 400)[:, None]
    values = BesselBasis(r_max, num_bessel)(rr) * PolynomialCutoff(r_max, p)(rr)   # [400, n]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(rr[:, 0], values.detach())
    ax.set(xlabel="r (Å)", ylabel="$j_n(r) f_p(r)$", title=f"{num_bessel} radial features, $r_c$ = {r_max} Å")
    plt.show()
    return values

values = plot_radial()
assert values[-1].abs().max() < 1e-6                     # every feature vanishes at r_c
widgets.interactive(plot_radial, r_max=(2.0, 8.0, 0.5), num_bessel=(1, 10))

# %% [markdown]
# ## 3. The radial MLP $R_{kl}(r)$
#
# MACE learns the radial functions: $R_{k\,l_1 l_2 l_3}(r) = \mathrm{MLP}\big(j(r)\, f_p(r)\big)$, one output per
# channel $k$ and coupling path. The MLP has no biases and $\mathrm{silu}(0) = 0$, so $R(r) = 0$ wherever
# its input is 0: the smooth cutoff is inherited by the learned functions.

# %%
mlp = RadialMLP([num_bessel, 64, 64, 64, 16])              # [n_bessel] -> 16 radial functions
features = bessel(r) * cutoff(r)                           # [n_points, n_bessel]
R = mlp(features)                                          # [n_points, 16]
print("R(r) shape:", tuple(R.shape), "  max |R(r_c)| =", R[-1].abs().max().item())
assert R[-1].abs().max() < 1e-12
assert torch.isfinite(R).all()

# %% [markdown]
# *Line ↔ equation*: `mlp(features)` is $R_{kl}(r)$ of Eq. (9) (App. A.5); with no bias, $\mathrm{MLP}(0) = 0$ exactly.
#
# ## 4. The angular part $Y_l^m(\hat{\mathbf r}_{ij})$
#
# Real spherical harmonics (notebook 00), "component" normalisation $\sum_m Y_{lm}^2 = 2l+1$. They rotate
# with Wigner matrices: $Y(R\hat{\mathbf r}) = D(R)\, Y(\hat{\mathbf r})$ with $D$ block-diagonal over $l$ and
# parity $(-1)^l$ under inversion.

# %%
lmax = 3
vectors = torch.randn(50, 3, generator=gen)                # r_ij of 50 edges
Y = spherical_harmonics(lmax, vectors, normalize=True)     # [50, (lmax+1)^2]
norms = torch.stack([(Y[:, l * l:(l + 1) ** 2] ** 2).sum(-1) for l in range(lmax + 1)], -1)
assert torch.allclose(norms, torch.tensor([1.0, 3.0, 5.0, 7.0]).expand_as(norms))
print(assert_equivariant(lambda v: spherical_harmonics(lmax, v), (vectors,), ("cartesian_vectors",),
                         str(Irreps.spherical_harmonics(lmax))))

# %% [markdown]
# ## 5. Chemical embedding of the neighbour
#
# The element $z_j$ enters as a one-hot vector mapped linearly to $k$ scalar channels,
# $h^{(0)}_{j,k} = W_{z_j k} / \sqrt{n_\text{elements}}$ — a lookup of one row of $W$.

# %%
embedding = ChemicalEmbedding(num_elements=3, num_channels=8)   # elements H, C, O -> indices 0, 1, 2
species = torch.tensor([0, 1, 2, 1])                        # H, C, O, C
h0 = embedding(species)                                     # [4, 8]
one_hot = torch.nn.functional.one_hot(species, 3).to(dtype)
assert torch.allclose(h0, one_hot @ embedding.weight / math.sqrt(3))
assert torch.equal(h0[1], h0[3])                            # same element, same embedding
print("h0 shape:", tuple(h0.shape))

# %% [markdown]
# ## 6. Putting it together: $\phi_{klm}(\mathbf r_{ij}, z_j)$
#
# $$\phi_{k l m}(\mathbf r_{ij}, z_j) = R_{kl}(r_{ij})\, Y_l^m(\hat{\mathbf r}_{ij})\, h^{(0)}_{j,k},$$
# the summand of the first-layer atomic basis, Eq. (9) of the paper ($h^{(0)}_{j,k}$ is its $W_{k z_j}$).
# `EdgeEmbedding` returns the angular and radial features of every edge; here one radial function per
# channel and $l$ (the simplest choice; MACE's interaction block of notebook 02 uses one per coupling path).

# %%
edge = EdgeEmbedding(r_max, num_bessel, p, lmax)
vectors = 3 * torch.randn(6, 3, generator=gen)              # 6 edges r_ij
neighbour_species = torch.tensor([0, 0, 1, 2, 1, 0])        # z_j
Y, radial = edge(vectors)                                   # [6, 16], [6, 8]
k = 8
R_kl = RadialMLP([num_bessel, 32, k * (lmax + 1)])(radial).reshape(6, k, lmax + 1)   # [6, k, lmax+1]
R_klm = torch.repeat_interleave(R_kl, torch.tensor([2 * l + 1 for l in range(lmax + 1)]), dim=-1)  # [6, k, 16]
phi = R_klm * Y[:, None, :] * embedding(neighbour_species)[:, :, None]     # [6, k, (lmax+1)^2]
print("phi shape [n_edges, k, (lmax+1)^2]:", tuple(phi.shape))
beyond = (vectors.norm(dim=1) >= r_max)
assert torch.all(phi[beyond] == 0) and phi[~beyond].abs().max() > 0
print("edges beyond the cutoff:", int(beyond.sum()), "→ φ = 0 there")

# %% [markdown]
# *Line ↔ equation*: `R_klm` is $R_{kl}(r_{ij})$ repeated over $m$, `Y` is $Y_l^m(\hat{\mathbf r}_{ij})$, the
# embedding is $h^{(0)}_{j,k}$; their product is $\phi_{klm}$.
#
# φ rotates like $Y$ (the radial part and the element are invariant):

# %%
def phi_of(vectors):
    Yv, rad = edge(vectors)
    Rv = torch.repeat_interleave(RadialMLP_fixed(rad).reshape(len(vectors), k, lmax + 1),
                                 torch.tensor([2 * l + 1 for l in range(lmax + 1)]), dim=-1)
    return (Rv * Yv[:, None, :]).flatten(1)                # [n_edges, k * 16]: k copies of 0e+1o+2e+3o

RadialMLP_fixed = RadialMLP([num_bessel, 32, k * (lmax + 1)])
# flattened [k, 16] is "k x (0e+1o+2e+3o)" — in irreps notation a repeated sum:
irreps_phi = "+".join([str(Irreps.spherical_harmonics(lmax))] * k)
print(assert_equivariant(phi_of, (vectors,), ("cartesian_vectors",), irreps_phi))

# %% [markdown]
# **Summary** — φ is invariant in its radial and chemical parts and equivariant through $Y_l^m$. Summing it
# over the neighbours gives the atomic basis $A_i$ (notebook 02).
