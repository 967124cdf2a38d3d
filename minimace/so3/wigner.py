r"""Real Clebsch–Gordan / Wigner-3j tensors, Wigner D matrices and random O(3) elements.

The Clebsch–Gordan coefficients couple two irreps into a third; MACE uses them to build the symmetric
basis :math:`B = \sum_{\mathbf{lm}} C^{LM}_{\mathbf{lm}} \prod_\xi A_{l_\xi m_\xi}` (Batatia et al. 2022,
Eq. 10) and the equivariant tensor products of the interaction (Eq. 8–9).

Change of basis (complex → real). With :math:`Y^{\mathbb C} = Q\, Y^{\mathbb R}` and
:math:`Q_l = (-i)^l\, Q^{\rm Wiki}_l` (the Wikipedia real form, see ``spherical_harmonics.py``):

.. math::
    Q_{m, |m|} = \tfrac{1}{\sqrt2},\; Q_{m,-|m|} = \tfrac{-i}{\sqrt2}\ (m<0); \qquad Q_{00} = 1; \qquad
    Q_{m, m} = \tfrac{(-1)^m}{\sqrt2},\; Q_{m,-m} = \tfrac{i(-1)^m}{\sqrt2}\ (m>0).

The real coupling tensor follows from the complex one :math:`\langle l_1 m_1 l_2 m_2 | l_3 m_3\rangle`
(sympy, Condon–Shortley):

.. math::
    C_{abc} = \sum_{m_1 m_2 m_3} Q^{(l_1)}_{m_1 a}\, Q^{(l_2)}_{m_2 b}\, \overline{Q^{(l_3)}_{m_3 c}}\,
    \langle l_1 m_1 l_2 m_2 | l_3 m_3\rangle .

The phase :math:`(-i)^l` makes :math:`C` real also when :math:`l_1+l_2+l_3` is odd (without it, it would be
purely imaginary). ``clebsch_gordan`` is this :math:`C` (:math:`\|C\|_F^2 = 2l_3+1`); ``wigner_3j`` is
:math:`C / \|C\|_F` (:math:`\|C\|_F = 1`), identical, sign included, to ``e3nn.o3.wigner_3j`` of
e3nn >= 0.5. Both are computed exactly with sympy, rounded once, and cached.

Note on e3nn 0.4.4 (pinned by mace-torch 0.3.16): its stored 3j tensors equal these for every even
:math:`l_1+l_2+l_3` — all that a tensor product of natural-parity irreps (0e, 1o, 2e, ...) such as MACE's uses —
but have the opposite overall sign for some odd triples, e.g. (1, 2, 2). The sign is a convention
(``tests/test_so3_official_e3nn.py`` pins this).

Wigner D. For a rotation :math:`R`, :math:`Y_l(R\hat r) = D^l(R)\, Y_l(\hat r)`. By orthonormality of the
:math:`Y_{lm}` ("component" normalisation, :math:`\frac{1}{4\pi}\int Y_{lm}Y_{lm'} = \delta_{mm'}`),

.. math::
    D^l_{mm'}(R) = \frac{1}{4\pi}\int_{S^2} Y_{lm}(R\hat r)\, Y_{lm'}(\hat r)\, d\Omega ,

evaluated exactly by a product quadrature (Gauss–Legendre in :math:`\cos\theta` × uniform in
:math:`\varphi`), exact for the polynomials of degree :math:`2l` in the integrand.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import sympy as sp
import torch
from sympy.physics.wigner import clebsch_gordan as _sympy_cg

from .irreps import Irreps
from .spherical_harmonics import spherical_harmonics


@functools.lru_cache(maxsize=None)
def real_to_complex_basis(l: int) -> sp.Matrix:
    r"""Exact :math:`Q_l` with :math:`Y^{\mathbb C}_l = Q_l Y^{\mathbb R}_l`; rows complex m, columns real m."""
    q = sp.zeros(2 * l + 1, 2 * l + 1)
    h = 1 / sp.sqrt(2)
    for m in range(-l, l + 1):
        if m < 0:
            q[l + m, l - m], q[l + m, l + m] = h, -sp.I * h
        elif m == 0:
            q[l, l] = 1
        else:
            q[l + m, l + m], q[l + m, l - m] = (-1) ** m * h, sp.I * (-1) ** m * h
    return sp.expand((-sp.I) ** l * q)


def _check_triangle(l1: int, l2: int, l3: int) -> None:
    if min(l1, l2, l3) < 0 or not abs(l1 - l2) <= l3 <= l1 + l2:
        raise ValueError(f"(l1, l2, l3) = ({l1}, {l2}, {l3}) violates |l1 - l2| <= l3 <= l1 + l2")


@functools.lru_cache(maxsize=None)
def sympy_real_clebsch_gordan(l1: int, l2: int, l3: int) -> dict:
    r"""Exact nonzero entries ``{(a, b, c): value}`` of the real CG tensor (indices ``l + m``)."""
    _check_triangle(l1, l2, l3)
    q1, q2, q3 = (real_to_complex_basis(l) for l in (l1, l2, l3))
    terms = {}
    # Q has nonzeros only at (complex m, real ±m): each complex coefficient feeds at most 8 real entries.
    for m1, m2 in itertools.product(range(-l1, l1 + 1), range(-l2, l2 + 1)):
        m3 = m1 + m2
        if abs(m3) > l3:
            continue
        cg = _sympy_cg(l1, l2, l3, m1, m2, m3)
        for a, b, c in itertools.product({l1 + m1, l1 - m1}, {l2 + m2, l2 - m2}, {l3 + m3, l3 - m3}):
            coef = q1[l1 + m1, a] * q2[l2 + m2, b] * sp.conjugate(q3[l3 + m3, c])
            if coef != 0 and cg != 0:
                terms.setdefault((a, b, c), []).append(coef * cg)
    out = {}
    for idx, ts in terms.items():
        total = sp.expand(sp.Add(*ts))
        if total != 0:
            assert sp.im(total) == 0, f"complex entry {total} of the CG tensor in the real basis"
            out[idx] = total
    return out


@functools.lru_cache(maxsize=None)
def _real_cg_float64(l1: int, l2: int, l3: int) -> torch.Tensor:
    c = torch.zeros(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1, dtype=torch.float64)
    for idx, val in sympy_real_clebsch_gordan(l1, l2, l3).items():
        c[idx] = float(sp.N(val, 30))
    return c


def clebsch_gordan(l1: int, l2: int, l3: int, dtype=torch.float64, device=None) -> torch.Tensor:
    r"""Real Clebsch–Gordan tensor ``[2l1+1, 2l2+1, 2l3+1]`` in the minimace/e3nn basis.

    Normalised as the textbook coefficients, :math:`\sum_{ab} C_{abc} C_{abc'} = \delta_{cc'}`, so that
    :math:`\sum_{ab} C_{abc}\, Y_{l_1 a}(\hat r) Y_{l_2 b}(\hat r) \propto Y_{l_3 c}(\hat r)`.
    Equal to ``sqrt(2*l3 + 1) * wigner_3j(l1, l2, l3)``.
    """
    return _real_cg_float64(l1, l2, l3).to(dtype=dtype, device=device, copy=True)


def wigner_3j(l1: int, l2: int, l3: int, dtype=torch.float64, device=None) -> torch.Tensor:
    r"""Real Wigner-3j tensor ``[2l1+1, 2l2+1, 2l3+1]``, Frobenius norm 1, equal to ``e3nn.o3.wigner_3j``.

    Invariant: :math:`C_{abc} = \sum_{a'b'c'} D^{l_1}_{aa'} D^{l_2}_{bb'} D^{l_3}_{cc'} C_{a'b'c'}` for every
    rotation. Cached: repeated calls only copy a stored tensor.
    """
    c = _real_cg_float64(l1, l2, l3)
    return (c / math.sqrt(2 * l3 + 1)).to(dtype=dtype, device=device)


# ---------------------------------------------------------------------------------------------------
# Wigner D matrices
# ---------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _sphere_quadrature(l: int) -> tuple:
    """Points [n, 3] and weights [n] (sum 1) integrating polynomials of degree <= 2l on S² exactly."""
    cos_t, w_t = np.polynomial.legendre.leggauss(l + 1)
    n_phi = 2 * l + 1
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    ct, ph = np.meshgrid(cos_t, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    points = np.stack([st * np.cos(ph), st * np.sin(ph), ct], axis=-1).reshape(-1, 3)
    weights = (w_t[:, None] / 2 / n_phi * np.ones_like(ph)).reshape(-1)
    return torch.from_numpy(points), torch.from_numpy(weights)


def _Y_l(l: int, vectors: torch.Tensor) -> torch.Tensor:
    return spherical_harmonics(l, vectors)[..., l * l :]  # [..., 2l+1]


def wigner_D(l: int, R: torch.Tensor) -> torch.Tensor:
    r"""Wigner D matrices ``[..., 2l+1, 2l+1]`` of rotation matrices ``R [..., 3, 3]``: :math:`Y_l(Rx) = D Y_l(x)`.

    For an improper ``R`` (det -1) this is the action on the spherical harmonics, i.e.
    :math:`(-1)^l D^l(-R)`; use ``irreps_D`` for irreps with an explicit parity.
    """
    points, weights = _sphere_quadrature(l)
    points, weights = points.to(R.dtype).to(R.device), weights.to(R.dtype).to(R.device)
    rotated = points @ R.transpose(-1, -2)                        # [..., n, 3]: R x_q
    y_rot = _Y_l(l, rotated)                                      # [..., n, 2l+1]
    y = _Y_l(l, points)                                           # [n, 2l+1]
    return torch.einsum("...qm,q,qn->...mn", y_rot, weights, y)   # [..., 2l+1, 2l+1]


def irreps_D(irreps, R: torch.Tensor) -> torch.Tensor:
    r"""Block-diagonal representation ``[..., dim, dim]`` of ``R ∈ O(3)`` on features of type ``irreps``.

    Write :math:`R = \det(R)\, R'` with :math:`R'` proper; an irrep :math:`(l, p)` transforms with
    :math:`p^{[\det R = -1]}\, D^l(R')`. Each channel of a ``mul x ir`` block gets its own copy.
    """
    irreps = Irreps(irreps)
    det = torch.det(R)[..., None, None]                           # [..., 1, 1]
    proper = R * det                                              # R' = det(R) R, a rotation
    blocks = []
    for mul, ir in irreps:
        d = wigner_D(ir.l, proper)
        if ir.p == -1:
            d = d * det
        blocks.extend([d] * mul)
    if not blocks:
        return R.new_zeros(*R.shape[:-2], 0, 0)
    return _block_diag(blocks)


def _block_diag(blocks: list) -> torch.Tensor:
    batch = blocks[0].shape[:-2]
    n = sum(b.shape[-1] for b in blocks)
    out = blocks[0].new_zeros(*batch, n, n)
    i = 0
    for b in blocks:
        k = b.shape[-1]
        out[..., i : i + k, i : i + k] = b
        i += k
    return out


# ---------------------------------------------------------------------------------------------------
# Random elements of SO(3) and O(3), uniform (Haar)
# ---------------------------------------------------------------------------------------------------
def random_rotation(n=None, dtype=torch.float64, generator=None, device=None) -> torch.Tensor:
    """Haar-uniform rotation matrices ``[3, 3]`` (``n=None``) or ``[n, 3, 3]``: normalised Gaussian quaternions."""
    shape = () if n is None else (n,)
    q = torch.randn(*shape, 4, dtype=torch.float64, generator=generator)
    q = q / q.norm(dim=-1, keepdim=True)
    w, a, b, c = q.unbind(-1)
    R = torch.stack([
        1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w),
        2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w),
        2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b),
    ], dim=-1).reshape(*shape, 3, 3)
    return R.to(dtype=dtype, device=device)


def random_O3(n=None, dtype=torch.float64, generator=None, device=None) -> torch.Tensor:
    """Haar-uniform elements of O(3): a random rotation times ±I with probability 1/2 each."""
    R = random_rotation(n, dtype=torch.float64, generator=generator)
    sign = torch.randint(0, 2, () if n is None else (n,), generator=generator) * 2 - 1
    return (R * sign.to(R.dtype)[..., None, None]).to(dtype=dtype, device=device)
