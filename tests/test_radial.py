"""Radial basis (MACE App. A.5): Bessel functions, polynomial envelope, normalised radial MLP; sympy proofs."""

import math

import numpy as np
import pytest
import torch

from minimace.radial import BesselBasis, PolynomialCutoff, RadialMLP, second_moment_constant

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", DTYPES)
def test_bessel_basis_formula(dtype):
    r_max, n = 4.5, 6
    r = torch.linspace(0.3, 4.4, 50, dtype=dtype)[:, None]
    out = BesselBasis(r_max, n).to(dtype)(r)
    assert out.shape == (50, n) and out.dtype == dtype
    for k in range(1, n + 1):
        expected = math.sqrt(2 / r_max) * torch.sin(k * math.pi * r[:, 0].double() / r_max) / r[:, 0].double()
        torch.testing.assert_close(out[:, k - 1].double(), expected, atol=TOL[dtype], rtol=TOL[dtype])


def test_bessel_functions_are_orthonormal_with_weight_r2():
    """∫_0^rc j_n j_m r² dr = δ_nm: the √(2/r_c) prefactor is the right normalisation."""
    r_max, n = 5.0, 5
    x, w = np.polynomial.legendre.leggauss(400)
    r = torch.tensor(0.5 * r_max * (x + 1))[:, None]
    j = BesselBasis(r_max, n).double()(r)  # [400, n]
    gram = torch.einsum("q,qn,qm->nm", torch.tensor(0.5 * r_max * w) * r[:, 0] ** 2, j, j)
    torch.testing.assert_close(gram, torch.eye(n, dtype=torch.float64), atol=1e-10, rtol=0)


def envelope_derivatives(f, r):
    r = r.clone().requires_grad_(True)
    y = f(r)
    (d1,) = torch.autograd.grad(y.sum(), r, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), r)
    return y.detach(), d1.detach(), d2


def check_envelope(f, r_max):
    """f(0) = 1, f(r_c) = f'(r_c) = f''(r_c) = 0, f = 0 beyond r_c, decreasing on [0, r_c]."""
    y0, _, _ = envelope_derivatives(f, torch.zeros(1, dtype=torch.float64))
    yc, d1, d2 = envelope_derivatives(f, torch.full((1,), r_max * (1 - 1e-12), dtype=torch.float64))
    beyond = f(torch.tensor([r_max, 1.2 * r_max], dtype=torch.float64))
    r = torch.linspace(0, r_max, 200, dtype=torch.float64)
    assert abs(float(y0) - 1.0) < 1e-12
    assert abs(float(yc)) < 1e-9 and abs(float(d1)) < 1e-9 and abs(float(d2)) < 1e-9, (yc, d1, d2)
    assert torch.all(beyond == 0)
    assert torch.all(torch.diff(f(r)) <= 1e-15)


@pytest.mark.parametrize("p", [3, 5, 6])
def test_polynomial_cutoff_is_smooth_at_r_max(p):
    check_envelope(PolynomialCutoff(4.0, p), 4.0)


def test_envelope_check_catches_a_broken_envelope():
    """Negative control: a wrong coefficient leaves a kink at r_c."""

    def broken(r, p=5, r_max=4.0):
        x = r / r_max
        f = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - (p * (p + 1) / 2 + 0.01) * x ** (p + 2)
        return f * (r < r_max)

    with pytest.raises(AssertionError):
        check_envelope(broken, 4.0)


def test_second_moment_constant_is_exact():
    """Quadrature constant vs an independent integral (scipy quad), for silu and tanh."""
    from scipy.integrate import quad

    for act, f in ((torch.nn.functional.silu, lambda z: z / (1 + math.exp(-z))), (torch.tanh, math.tanh)):
        m2 = quad(lambda z: f(z) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi), -40, 40, epsabs=1e-14)[0]
        assert abs(second_moment_constant(act) - m2**-0.5) < 1e-12
    # negative control: the identity has constant 1, silu does not
    assert abs(second_moment_constant(lambda z: z) - 1) < 1e-12
    assert abs(second_moment_constant(torch.nn.functional.silu) - 1) > 0.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_radial_mlp_matches_its_definition(dtype):
    torch.manual_seed(0)
    mlp = RadialMLP([8, 16, 16, 5]).to(dtype)
    x = torch.randn(7, 8, dtype=dtype)
    c = second_moment_constant(torch.nn.functional.silu)
    h = x.double()
    for k, w in enumerate(mlp.weights):
        h = h @ w.double() / math.sqrt(w.shape[0])
        if k < 2:
            h = c * torch.nn.functional.silu(h)
    torch.testing.assert_close(mlp(x).double(), h, atol=10 * TOL[dtype], rtol=10 * TOL[dtype])


def test_radial_mlp_preserves_unit_variance():
    """The 1/sqrt(fan_in) and normalised activation keep the second moment near 1 through the layers."""
    torch.manual_seed(0)
    mlp = RadialMLP([64, 64, 64, 64]).double()
    y = mlp(torch.randn(20000, 64, dtype=torch.float64))
    assert 0.6 < float(y.detach().pow(2).mean()) < 1.6


# ------------------------------------------------------------------ exact (sympy) proofs of the same properties
def test_sympy_envelope_vanishes_with_two_derivatives_at_r_max():
    """sympy.diff: f_p(r_c) = f_p'(r_c) = f_p''(r_c) = 0 and f_p(0) = 1 exactly, for a symbolic r_c."""
    import sympy as sp

    from minimace.radial import sympy_envelope

    r, rc = sp.Symbol("r", positive=True), sp.Symbol("r_c", positive=True)
    for p in (3, 5, 6):
        f = sympy_envelope(p)
        assert f.subs(r, 0) == 1
        assert [sp.simplify(sp.diff(f, r, k).subs(r, rc)) for k in range(3)] == [0, 0, 0]
        assert sp.simplify(sp.diff(f, r, 3).subs(r, rc)) != 0  # exactly two derivatives: the check can fail


def test_sympy_envelope_check_catches_a_wrong_coefficient():
    import sympy as sp

    from minimace.radial import sympy_envelope

    r, rc = sp.Symbol("r", positive=True), sp.Symbol("r_c", positive=True)
    broken = sympy_envelope(5) - sp.Rational(1, 100) * (r / rc) ** 7
    assert sp.simplify(sp.diff(broken, r).subs(r, rc)) != 0


def test_sympy_bessel_orthonormal_for_all_n_m():
    """sympy.integrate with integer symbols n, m: ∫_0^rc j_n j_m r² dr = δ_nm for every n, m and r_c."""
    import sympy as sp

    from minimace.radial import sympy_bessel

    r, rc = sp.Symbol("r", positive=True), sp.Symbol("r_c", positive=True)
    n, m = sp.symbols("n m", integer=True, positive=True)
    gram = sp.integrate(sympy_bessel(n) * sympy_bessel(m) * r**2, (r, 0, rc))
    assert gram.subs({n: 2, m: 2}) == 1 and gram.subs({n: 2, m: 3}) == 0 and gram.subs({n: 7, m: 1}) == 0
    assert sp.integrate(sympy_bessel(n) ** 2 * r**2, (r, 0, rc)) == 1
    # negative control: without the weight r² the functions are not orthonormal
    assert sp.integrate(sympy_bessel(1) ** 2, (r, 0, rc)) != 1


def test_torch_modules_evaluate_the_sympy_formulas():
    import sympy as sp

    from minimace.radial import sympy_bessel, sympy_envelope

    r_max, n_bessel, p = 4.5, 6, 5
    r = sp.Symbol("r", positive=True)
    grid = np.linspace(0.2, 4.4, 37)
    bessel = [sp.lambdify(r, sympy_bessel(k, r_max=sp.Float(r_max))) for k in range(1, n_bessel + 1)]
    expected = np.stack([f(grid) for f in bessel], axis=1)  # [37, n_bessel]
    out = BesselBasis(r_max, n_bessel).double()(torch.tensor(grid)[:, None])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    envelope = sp.lambdify(r, sympy_envelope(p, r_max=sp.Float(r_max)))(grid)
    np.testing.assert_allclose(PolynomialCutoff(r_max, p)(torch.tensor(grid)).numpy(), envelope, rtol=1e-12, atol=1e-12)
