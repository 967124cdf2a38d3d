r"""Real spherical harmonics :math:`Y_l^m(\hat r)`, derived with sympy and evaluated as polynomials in torch.

They are the angular part of the one-particle basis of MACE (Batatia et al. 2022, Eq. 8:
:math:`\phi_{klm}(\mathbf r_{ij}) = R_{kl}(r_{ij})\, Y_l^m(\hat{\mathbf r}_{ij})`) and of ACE (Drautz 2019).

Convention (the one of e3nn and of the official implementation, so that its weights transfer):

1. Start from sympy's complex :math:`Y_l^m(\theta, \varphi)` (``sympy.Ynm``, Condon–Shortley phase, orthonormal).
2. Take the standard real combination (Wikipedia "real form"), :math:`z` the polar axis

   .. math::
       Y_{lm} = \begin{cases}
       \sqrt2\,(-1)^m \,\mathrm{Im}\, Y_l^{|m|} & m < 0 \\
       Y_l^0 & m = 0 \\
       \sqrt2\,(-1)^m \,\mathrm{Re}\, Y_l^{m} & m > 0 .
       \end{cases}

3. "component" normalisation: multiply by :math:`\sqrt{4\pi}`, so :math:`\sum_m Y_{lm}(\hat r)^2 = 2l+1`
   and :math:`\frac{1}{4\pi}\int Y_{lm} Y_{l'm'}\,d\Omega = \delta_{ll'}\delta_{mm'}`.
4. Relabel the axes :math:`(X, Y, Z) \to (z, x, y)`: :math:`Y^{\rm minimace}_{lm}(x, y, z) = \sqrt{4\pi}\,
   Y_{lm}(X{=}z, Y{=}x, Z{=}y)`. Then :math:`l = 1` is :math:`\sqrt3\,(x, y, z)` in this order, and
   :math:`y` is the polar axis (:math:`Y_{l0}` depends on :math:`y` only). The relabelling is a cyclic
   permutation, a proper rotation, so the Clebsch–Gordan tensors of ``wigner.py`` need no change.

Each :math:`Y_{lm}` is then a homogeneous harmonic polynomial of degree :math:`l` in the unit vector
(``sympy_real_spherical_harmonic``); ``spherical_harmonics`` evaluates all of them at once as
``monomials(x̂) @ coefficients.T`` with the exact coefficients turned into floats once and cached.
"""

from __future__ import annotations

import functools

import sympy as sp
import torch

x, y, z = sp.symbols("x y z", real=True)
_theta, _phi = sp.symbols("theta phi", real=True)


@functools.lru_cache(maxsize=None)
def _complex_ylm_times_rl(l: int, m: int) -> sp.Expr:
    r""":math:`r^l\, Y_l^m` (``sympy.Ynm``, :math:`m \ge 0`) as a homogeneous polynomial in X, Y, Z (z polar)."""
    assert 0 <= m <= l
    expr = sp.Ynm(l, m, _theta, _phi).expand(func=True)
    # On the unit sphere: cos θ = Z, sin θ = s = sqrt(1 - Z²), e^{iφ} = (X + iY)/s.
    s = sp.sqrt(1 - z**2)
    expr = expr.subs({sp.cos(_theta): z, sp.sin(_theta): s}).subs(sp.exp(sp.I * _phi), (x + sp.I * y) / s)
    expr = sp.expand(sp.cancel(sp.expand(expr)))  # the powers of s cancel: a polynomial in X, Y, Z
    return _homogenize(expr, l)


def _homogenize(expr: sp.Expr, l: int) -> sp.Expr:
    """Multiply each monomial of degree d by r^(l-d) (equal to 1 on the unit sphere) -> degree l."""
    r2 = x**2 + y**2 + z**2
    poly = sp.Poly(expr, x, y, z)
    out = 0
    for powers, coef in poly.terms():
        d = sum(powers)
        assert (l - d) % 2 == 0, "a spherical harmonic has the parity of l"
        out += coef * x ** powers[0] * y ** powers[1] * z ** powers[2] * r2 ** ((l - d) // 2)
    return sp.expand(out)


@functools.lru_cache(maxsize=None)
def sympy_textbook_real_spherical_harmonic(l: int, m: int) -> sp.Expr:
    r"""Orthonormal real :math:`r^l Y_{lm}(X, Y, Z)` with Z polar (Wikipedia's real form of ``sympy.Ynm``).

    Returns a homogeneous polynomial of degree ``l`` in the sympy symbols ``x, y, z`` of this module
    (standing for the textbook axes X, Y, Z). Step 2 of the module docstring.
    """
    if not -l <= m <= l:
        raise ValueError(f"need -l <= m <= l, got l={l}, m={m}")
    c = _complex_ylm_times_rl(l, abs(m))
    if m == 0:
        return sp.expand(c)
    part = sp.im(c) if m < 0 else sp.re(c)
    return sp.expand(sp.sqrt(2) * (-1) ** abs(m) * part)


@functools.lru_cache(maxsize=None)
def sympy_real_spherical_harmonic(l: int, m: int) -> sp.Expr:
    r"""The minimace / e3nn real :math:`Y_{lm}` as an exact polynomial in ``x, y, z`` (steps 1–4 above).

    Homogeneous of degree ``l``; equal to :math:`Y_{lm}(\hat r)` for unit vectors, normalised so that
    :math:`\sum_m Y_{lm}^2 = (2l+1)\,r^{2l}`.

    Examples
    --------
    >>> sympy_real_spherical_harmonic(1, -1)
    sqrt(3)*x
    """
    tb = sympy_textbook_real_spherical_harmonic(l, m)
    relabelled = tb.subs({x: z, y: x, z: y}, simultaneous=True)  # (X, Y, Z) -> (z, x, y)
    return sp.expand(sp.sqrt(4 * sp.pi) * relabelled)


def _monomials(l: int) -> list:
    """Exponents (a, b, c) of the monomials x^a y^b z^c of degree l, in the order ``_monomial_values`` builds.

    M_0 = [1];  M_l = [x * M_{l-1}] + [y * (the last l of M_{l-1}, those free of x)] + [z^l].
    """
    if l == 0:
        return [(0, 0, 0)]
    prev = _monomials(l - 1)
    return ([(a + 1, b, c) for a, b, c in prev] + [(a, b + 1, c) for a, b, c in prev[-l:]]
            + [(0, 0, l)])


def _monomial_values(lmax: int, vectors: torch.Tensor) -> torch.Tensor:
    """All monomials of degree <= lmax of ``vectors [n, 3]``, as ``[n_mono, n]``, by the recursion above.

    Monomials along the first axis keep every product a contiguous row (faster than ``[n, n_mono]``).
    """
    v = vectors.T.contiguous()                                          # [3, n]
    xs, ys, zs = v[0:1], v[1:2], v[2:3]
    m = torch.ones_like(xs)
    blocks = [m]
    for l in range(1, lmax + 1):
        m = torch.cat([m * xs, m[-l:] * ys, m[-1:] * zs], dim=0)        # [(l+1)(l+2)/2, n]
        blocks.append(m)
    return torch.cat(blocks, dim=0)                                     # [n_mono, n]


@functools.lru_cache(maxsize=None)
def _coefficients(lmax: int) -> torch.Tensor:
    """Exact coefficients, as float64 [(lmax+1)**2, n_mono], of all Y_lm, l <= lmax, on the monomials."""
    exps = [e for l in range(lmax + 1) for e in _monomials(l)]
    col = {e: i for i, e in enumerate(exps)}
    coef = torch.zeros((lmax + 1) ** 2, len(exps), dtype=torch.float64)
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            poly = sp.Poly(sympy_real_spherical_harmonic(l, m), x, y, z)
            for powers, c in poly.terms():
                coef[l * l + l + m, col[powers]] = float(sp.N(c, 30))
    return coef


@functools.lru_cache(maxsize=None)
def _coefficients_on(lmax: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``_coefficients(lmax).T`` [n_mono, (lmax+1)**2] converted once per dtype and device."""
    return _coefficients(lmax).T.to(dtype=dtype, device=device).contiguous()


def spherical_harmonics(lmax: int, vectors: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    r"""All real spherical harmonics :math:`Y_{lm}`, :math:`l = 0..l_{max}`, of the given vectors.

    Parameters
    ----------
    lmax : int
        Largest degree.
    vectors : torch.Tensor
        ``[..., 3]`` Cartesian vectors (float32 or float64).
    normalize : bool
        If True (default) evaluate at :math:`\hat r = r/|r|` (a zero vector gives :math:`Y_{00}=1` and zeros);
        if False return the solid harmonics :math:`|r|^l Y_{lm}(\hat r)`.

    Returns
    -------
    torch.Tensor
        ``[..., (lmax+1)**2]``: the blocks ``l = 0, 1, ..., lmax`` concatenated, ``m = -l..l`` inside each
        block, in e3nn's basis with "component" normalisation (``sum_m Y_lm**2 = 2l+1``).
    """
    if vectors.shape[-1] != 3:
        raise ValueError(f"vectors must have shape [..., 3], got {tuple(vectors.shape)}")
    if normalize:
        vectors = torch.nn.functional.normalize(vectors, dim=-1)  # same epsilon as e3nn
    batch_shape = vectors.shape[:-1]
    monomials = _monomial_values(lmax, vectors.reshape(-1, 3))          # [n_mono, n]
    Y = monomials.T @ _coefficients_on(lmax, vectors.dtype, vectors.device)  # [n, (lmax+1)**2]
    return Y.reshape(*batch_shape, (lmax + 1) ** 2)
