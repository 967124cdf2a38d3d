"""Tests of the symmetry toolkit: spherical harmonics, Wigner-3j / Clebsch–Gordan, Wigner D, random O(3).

Oracles: sympy (exact), e3nn (same basis), and group properties (equivariance, orthogonality, homomorphism).
"""

import itertools
import math

import numpy as np
import pytest
import sympy as sp
import torch
from e3nn import o3

from minimace.so3 import (
    Irreps,
    clebsch_gordan,
    irreps_D,
    random_O3,
    random_rotation,
    real_to_complex_basis,
    spherical_harmonics,
    sympy_real_spherical_harmonic,
    sympy_textbook_real_spherical_harmonic,
    wigner_3j,
    wigner_D,
)
from minimace.so3.spherical_harmonics import x as X, y as Y, z as Z

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}  # relative to quantities of order 1


@pytest.fixture
def e3nn_float64():
    """e3nn builds its generators in the default dtype: float64 makes its D matrices float64-accurate."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _vectors(n, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, dtype=torch.float64, generator=g).to(dtype)


def _rotation_error(sh, l, R, v):
    """max |Y_l(R v) - D(R) Y_l(v)| for a spherical-harmonics function ``sh(l, v) -> [..., 2l+1]``."""
    D = wigner_D(l, R)
    return (sh(l, v @ R.T) - sh(l, v) @ D.T).abs().max().item()


def _Y(l, v):
    return spherical_harmonics(l, v)[..., l * l:]


# ---------------------------------------------------------------------------------------------------
# Spherical harmonics
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_spherical_harmonics_match_e3nn(dtype):
    v = _vectors(200, dtype)
    for lmax in (0, 1, 3, 8):
        ours = spherical_harmonics(lmax, v)
        ref = o3.spherical_harmonics(list(range(lmax + 1)), v.double(), normalize=True, normalization="component")
        assert ours.dtype == dtype and ours.shape == (200, (lmax + 1) ** 2)
        assert (ours.double() - ref).abs().max() < 10 * TOL[dtype] * (1 + lmax)
        raw = spherical_harmonics(lmax, 3 * v, normalize=False)
        ref = o3.spherical_harmonics(list(range(lmax + 1)), 3 * v.double(), normalize=False,
                                     normalization="component")
        assert ((raw.double() - ref).abs() / (1 + ref.abs())).max() < 10 * TOL[dtype] * (1 + lmax)


@pytest.mark.parametrize("dtype", DTYPES)
def test_spherical_harmonics_rotate_with_wigner_D_and_have_parity(dtype):
    v, R = _vectors(50, dtype), random_rotation(dtype=dtype, generator=torch.Generator().manual_seed(1))
    for l in range(7):
        assert _rotation_error(_Y, l, R, v) < 10 * TOL[dtype]
        assert (_Y(l, -v) - (-1) ** l * _Y(l, v)).abs().max() < TOL[dtype]
    # negative control: flipping the sign of one m breaks the closure under rotations
    broken = lambda l, u: _Y(l, u) * torch.tensor([1.0] * (2 * l) + [-1.0], dtype=dtype)  # noqa: E731
    assert _rotation_error(broken, 2, R, v) > 0.1


@pytest.mark.parametrize("dtype", DTYPES)
def test_spherical_harmonics_component_normalisation_and_l1(dtype):
    v = _vectors(100, dtype)
    Ys = spherical_harmonics(6, v)
    for l in range(7):
        assert torch.allclose(Ys[:, l * l:(l + 1) ** 2].pow(2).sum(-1), torch.full((100,), 2.0 * l + 1, dtype=dtype),
                              atol=10 * TOL[dtype], rtol=0)
    unit = v / v.norm(dim=-1, keepdim=True)
    assert torch.allclose(Ys[:, 1:4], math.sqrt(3) * unit, atol=TOL[dtype], rtol=0)  # l = 1 is √3 (x, y, z)
    assert torch.allclose(Ys[:, 0], torch.ones(100, dtype=dtype))


def test_spherical_harmonics_orthonormal_on_the_sphere():
    """(1/4π) ∫ Y_lm Y_l'm' dΩ = δ δ, by Gauss–Legendre (cos θ) x uniform (φ) quadrature, exact here."""
    lmax = 6
    n = lmax + 2
    cos_t, w = np.polynomial.legendre.leggauss(n)
    phi = 2 * np.pi * np.arange(2 * n + 1) / (2 * n + 1)
    ct, ph = np.meshgrid(cos_t, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    pts = torch.tensor(np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1).reshape(-1, 3))
    wts = torch.tensor((w[:, None] / 2 / (2 * n + 1) * np.ones_like(ph)).reshape(-1))
    Ys = spherical_harmonics(lmax, pts)  # [n_points, (lmax+1)**2]
    gram = Ys.T @ (wts[:, None] * Ys)
    assert (gram - torch.eye((lmax + 1) ** 2, dtype=torch.float64)).abs().max() < 1e-13


def test_real_harmonics_are_the_documented_combination_of_sympy_Ynm():
    """Y_lm(x, y, z) = √(4π) · [√2 (-1)^m Im/Re Ynm(θ, φ)], θ, φ the angles of (X, Y, Z) = (z, x, y)."""
    theta, phi = sp.symbols("theta phi", real=True)
    pts = _vectors(3, torch.float64, seed=3)
    pts = pts / pts.norm(dim=-1, keepdim=True)
    ours = spherical_harmonics(5, pts)
    for (px, py, pz), row in zip(pts.tolist(), ours):
        t_val, p_val = math.acos(py), math.atan2(px, pz)  # polar axis y; azimuth from z towards x
        for l in range(6):
            for m in range(-l, l + 1):
                c = complex(sp.Ynm(l, abs(m), theta, phi).evalf(subs={theta: t_val, phi: p_val}, n=20))
                real = c.real if m == 0 else math.sqrt(2) * (-1) ** m * (c.imag if m < 0 else c.real)
                assert abs(row[l * l + l + m].item() - math.sqrt(4 * math.pi) * real) < 1e-12


def test_sympy_polynomials_are_harmonic_and_homogeneous():
    for l in range(7):
        for m in range(-l, l + 1):
            p = sympy_real_spherical_harmonic(l, m)
            assert sp.expand(sp.diff(p, X, 2) + sp.diff(p, Y, 2) + sp.diff(p, Z, 2)) == 0
            assert sp.Poly(p, X, Y, Z).is_homogeneous and sp.Poly(p, X, Y, Z).total_degree() == l
    assert sympy_real_spherical_harmonic(1, -1) == sp.sqrt(3) * X
    assert sympy_textbook_real_spherical_harmonic(1, 0) == sp.sqrt(3) * Z / (2 * sp.sqrt(sp.pi))  # z polar
    with pytest.raises(ValueError):
        sympy_textbook_real_spherical_harmonic(2, 3)


def test_spherical_harmonics_autograd_and_batch_shapes():
    v = _vectors(6, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda u: spherical_harmonics(4, u), (v,))
    assert torch.autograd.gradcheck(lambda u: spherical_harmonics(3, u, normalize=False), (v,))
    assert spherical_harmonics(2, torch.randn(4, 5, 3)).shape == (4, 5, 9)
    assert spherical_harmonics(2, torch.randn(3)).shape == (9,)
    assert spherical_harmonics(3, torch.zeros(0, 3)).shape == (0, 16)
    zero = spherical_harmonics(2, torch.zeros(1, 3))
    assert torch.equal(zero, torch.tensor([[1.0] + [0.0] * 8]))  # as e3nn: Y_00 = 1, the rest 0
    with pytest.raises(ValueError):
        spherical_harmonics(2, torch.zeros(4, 2))


# ---------------------------------------------------------------------------------------------------
# Clebsch–Gordan / Wigner-3j
# ---------------------------------------------------------------------------------------------------
def _triples(lmax):
    return [t for t in itertools.product(range(lmax + 1), repeat=3) if abs(t[0] - t[1]) <= t[2] <= t[0] + t[1]]


def test_wigner_3j_equals_e3nn_sign_included():
    for l1, l2, l3 in _triples(4) + [(3, 3, 6), (2, 4, 5), (5, 5, 2)]:
        ours, ref = wigner_3j(l1, l2, l3), o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
        assert ours.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
        assert (ours - ref).abs().max() < 1e-14, (l1, l2, l3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_wigner_3j_is_invariant_and_orthogonal(dtype):
    R = random_rotation(dtype=dtype, generator=torch.Generator().manual_seed(2))
    for l1, l2, l3 in _triples(3):
        C = wigner_3j(l1, l2, l3, dtype=dtype)
        rotated = torch.einsum("abc,ia,jb,kc->ijk", C, wigner_D(l1, R), wigner_D(l2, R), wigner_D(l3, R))
        assert (rotated - C).abs().max() < TOL[dtype]
        assert abs(C.norm().item() - 1) < TOL[dtype]
        cg = clebsch_gordan(l1, l2, l3, dtype=dtype)
        gram = torch.einsum("abc,abd->cd", cg, cg)  # Σ_ab C_abc C_abd = δ_cd
        assert (gram - torch.eye(2 * l3 + 1, dtype=dtype)).abs().max() < TOL[dtype]
        assert torch.allclose(cg, math.sqrt(2 * l3 + 1) * C, atol=TOL[dtype], rtol=0)
    # negative control: a sign flip of one slice breaks the invariance
    C = wigner_3j(1, 1, 2, dtype=dtype).clone()
    C[0] *= -1
    D1, D2 = wigner_D(1, R), wigner_D(2, R)
    assert (torch.einsum("abc,ia,jb,kc->ijk", C, D1, D1, D2) - C).abs().max() > 0.01


def test_clebsch_gordan_is_complete_and_couples_spherical_harmonics():
    l1, l2 = 2, 1
    full = torch.cat([clebsch_gordan(l1, l2, l3) for l3 in range(1, 4)], dim=-1)  # [5, 3, 15]: unitary
    flat = full.reshape(15, 15)
    assert (flat @ flat.T - torch.eye(15, dtype=torch.float64)).abs().max() < 1e-14
    v = _vectors(20, torch.float64)
    for l3 in (1, 3):  # l1 + l2 + l3 even: Y_l1 ⊗ Y_l2 projected on l3 is proportional to Y_l3
        coupled = torch.einsum("abc,na,nb->nc", clebsch_gordan(l1, l2, l3), _Y(l1, v), _Y(l2, v))
        ratio = coupled / _Y(l3, v)
        assert (ratio - ratio[0, 0]).abs().max() < 1e-12 and ratio[0, 0].abs() > 0.1


def test_wigner_3j_cache_errors_and_change_of_basis():
    a = wigner_3j(2, 2, 2)
    a.mul_(0)  # the caller owns a copy; the cache is untouched
    assert wigner_3j(2, 2, 2).abs().max() > 0.1
    assert wigner_3j(1, 1, 1, dtype=torch.float32).dtype == torch.float32
    with pytest.raises(ValueError):
        wigner_3j(1, 1, 3)
    from e3nn.o3._wigner import change_basis_real_to_complex
    for l in range(5):  # Q is unitary, and is e3nn's matrix (phase (-i)^l included)
        q = real_to_complex_basis(l)
        assert sp.simplify(q.H * q - sp.eye(2 * l + 1)) == sp.zeros(2 * l + 1)
        ref = change_basis_real_to_complex(l, dtype=torch.float64).numpy()
        assert np.abs(np.array(q.evalf(), dtype=complex) - ref).max() < 1e-15


# ---------------------------------------------------------------------------------------------------
# Wigner D, irreps_D, random O(3)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_wigner_D_is_an_orthogonal_representation(dtype):
    g = torch.Generator().manual_seed(4)
    R1, R2 = random_rotation(4, dtype=dtype, generator=g), random_rotation(4, dtype=dtype, generator=g)
    eye3 = torch.eye(3, dtype=dtype)
    for l in range(7):
        D1, D2, D12 = wigner_D(l, R1), wigner_D(l, R2), wigner_D(l, R1 @ R2)
        eye = torch.eye(2 * l + 1, dtype=dtype)
        assert D1.shape == (4, 2 * l + 1, 2 * l + 1)
        assert (D12 - D1 @ D2).abs().max() < 10 * TOL[dtype]
        assert (D1 @ D1.transpose(-1, -2) - eye).abs().max() < 10 * TOL[dtype]
        assert (wigner_D(l, eye3) - eye).abs().max() < TOL[dtype]
    assert torch.allclose(wigner_D(1, R1), R1, atol=TOL[dtype], rtol=0)  # l = 1 acts as R on (x, y, z)
    for l in range(4):  # improper R: the action on Y_l, (-1)^l D(-R)
        assert torch.allclose(wigner_D(l, -R1), (-1) ** l * wigner_D(l, R1), atol=TOL[dtype], rtol=0)


def test_wigner_D_matches_e3nn(e3nn_float64):
    R = random_rotation(3, generator=torch.Generator().manual_seed(5))
    for l in range(7):
        assert (wigner_D(l, R) - o3.Irrep(l, 1).D_from_matrix(R)).abs().max() < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
def test_irreps_D_parity_and_blocks(dtype, e3nn_float64):
    R = random_O3(6, dtype=dtype, generator=torch.Generator().manual_seed(6))
    irreps = Irreps("2x0e+1x0o+1x1o+1x1e+1x2e+1x3o")
    D = irreps_D(irreps, R)
    assert D.shape == (6, irreps.dim, irreps.dim) and D.dtype == dtype
    ref = o3.Irreps(str(irreps)).D_from_matrix(R.double())
    assert (D.double() - ref).abs().max() < 10 * TOL[dtype]
    inv = -torch.eye(3, dtype=dtype)
    signs = torch.tensor([1, 1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1, 1] + [-1] * 7, dtype=dtype)
    assert torch.allclose(irreps_D(irreps, inv), torch.diag(signs), atol=TOL[dtype], rtol=0)
    assert torch.allclose(irreps_D("1o", R), R, atol=TOL[dtype], rtol=0)  # vectors: the matrix itself


def test_random_rotations_are_haar():
    g = torch.Generator().manual_seed(7)
    R = random_rotation(20000, generator=g)
    assert R.shape == (20000, 3, 3) and R.dtype == torch.float64
    assert (R @ R.transpose(1, 2) - torch.eye(3, dtype=torch.float64)).abs().max() < 1e-13
    assert (torch.det(R) - 1).abs().max() < 1e-13
    tr = torch.diagonal(R, dim1=1, dim2=2).sum(-1)  # Haar on SO(3): E[tr R] = 0, E[(tr R)^2] = 1
    assert abs(tr.mean()) < 5 * 1 / math.sqrt(20000)
    assert abs(tr.pow(2).mean() - 1) < 5 * math.sqrt(2 / 20000)
    assert abs(R.mean(0)).max() < 5 / math.sqrt(3 * 20000)
    Q = random_O3(2000, dtype=torch.float32, generator=g)
    det = torch.det(Q.double())
    assert Q.dtype == torch.float32 and ((det.abs() - 1).abs() < 1e-5).all()
    assert 0.4 < (det < 0).double().mean() < 0.6
    assert random_rotation().shape == (3, 3)
