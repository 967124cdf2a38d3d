"""Tests of stage 3 (MACE Eq. 10; the density trick of Eq. 7): generalized Clebsch–Gordan basis, B-functions.

Oracles: e3nn's Wigner D matrices (equivariance), the character formula integrated numerically over SO(3)
(dimension of the space of symmetric equivariant maps), brute-force products (inside Eq. 10), sympy (exact rotation).
"""

import math
import os
from itertools import permutations

import numpy as np
import pytest
import torch
from e3nn import o3

from minimace import symmetric
from minimace.symmetric import b_functions, count_couplings, coupling_basis, product_basis

TOL = {torch.float64: 1e-12, torch.float32: 2e-5}


def _sh_irreps(lmax):
    return o3.Irreps("+".join(f"{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1)))


def _D(irreps, g):
    """Wigner D of e3nn in float64 (e3nn builds its generators in the default dtype)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return irreps.D_from_matrix(g.double())
    finally:
        torch.set_default_dtype(previous)


def _random_o3(seed, dtype, inversion):
    torch.manual_seed(seed)
    R = o3.rand_matrix(dtype=torch.float64)
    return (-R if inversion else R).to(dtype)


def equivariance_error(U, lmax, L, parity, g):
    """max |U (D ⊗ ... ⊗ D) − D_L U| for the O(3) matrix g."""
    D = _D(_sh_irreps(lmax), g).to(U.dtype)  # [d, d]
    D_L = _D(o3.Irrep(L, parity), g).to(U.dtype)  # [2L+1, 2L+1]
    nu = U.dim() - 2
    X = U
    for _ in range(nu):
        X = torch.tensordot(X, D, dims=([1], [0]))  # contract one input index, new index at the end
    left = X.movedim(1, -1)  # [2L+1, d, ..., d, n_paths]
    right = torch.einsum("MN,N...->M...", D_L, U)
    return (left - right).abs().max().item() if U.numel() else 0.0


def symmetry_error(U):
    nu = U.dim() - 2
    err = 0.0
    for perm in permutations(range(nu)):
        err = max(err, (U - U.permute(0, *[1 + p for p in perm], nu + 1)).abs().max().item())
    return err


# ----------------------------------------------------------------------------- character formula (independent)
def _chi(l, theta):
    """Character of V_l at a rotation by angle theta: Σ_m cos(m θ)."""
    return sum(np.cos(m * theta) for m in range(-l, l + 1))


def _partitions(n, largest=None):
    largest = n if largest is None else largest
    if n == 0:
        yield ()
        return
    for k in range(min(n, largest), 0, -1):
        for rest in _partitions(n - k, k):
            yield (k,) + rest


def character_count(lmax, nu, L, parity, n_quad=400):
    """dim Hom_{O(3)}(Sym^ν V, V_{L,p}) by integrating characters over O(3) = SO(3) × {1, −1}.

    χ_{Sym^ν V}(g) = Σ_{λ ⊢ ν} Π_i χ_V(g^{λ_i}) / z_λ (cycle index of the symmetric group);
    for g = −R, χ_V((−R)^c) = Σ_l (−1)^{lc} χ_l(cθ) and χ_{L,p}(−R) = p χ_L(θ). Weyl's formula gives the
    Haar measure of the class of angle θ: (1 − cos θ)/π dθ on [0, π] (Gauss–Legendre, exact for these
    trigonometric polynomials).
    """
    x, w = np.polynomial.legendre.leggauss(n_quad)
    theta, w = (x + 1) * math.pi / 2, w * math.pi / 2

    def chi_sym(sign):
        total = 0.0
        for lam in _partitions(nu):
            z = 1.0
            for k in set(lam):
                z *= k ** lam.count(k) * math.factorial(lam.count(k))
            term = 1.0
            for c in lam:
                term = term * sum((sign ** (l * c)) * _chi(l, c * theta) for l in range(lmax + 1))
            total = total + term / z
        return total

    measure = w * (1 - np.cos(theta)) / math.pi
    proper = np.sum(measure * chi_sym(1) * _chi(L, theta))
    improper = np.sum(measure * chi_sym(-1) * parity * _chi(L, theta))
    value = (proper + improper) / 2
    assert abs(value - round(value)) < 1e-8, value
    return int(round(value))


# ----------------------------------------------------------------------------- tests
CASES = [(lmax, nu, L, p) for lmax in (1, 2, 3) for nu in (1, 2, 3) for L in range(4) for p in (1, -1)]


@pytest.mark.parametrize("lmax,nu,L,p", CASES + [(2, 4, 0, 1), (2, 4, 2, 1), (3, 4, 1, -1), (4, 2, 3, -1)])
def test_count_equals_character_formula(lmax, nu, L, p):
    n = character_count(lmax, nu, L, p)
    assert count_couplings(lmax, nu, L, p) == n
    assert coupling_basis(lmax, nu, L, p).shape[-1] == n


def test_character_formula_negative_control():
    # forgetting the inversion (counting SO(3) maps only) must change the count
    lmax, nu, L, p = 3, 3, 1, -1
    x = character_count(lmax, nu, L, p) + character_count(lmax, nu, L, -p)
    assert x != count_couplings(lmax, nu, L, p)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lmax,nu,L,p", [(3, 3, 0, 1), (3, 3, 1, -1), (3, 3, 2, 1), (3, 3, 3, -1), (2, 2, 1, -1),
                                         (3, 1, 2, 1), (2, 4, 0, 1), (2, 4, 1, -1)])
def test_equivariant_symmetric_independent(lmax, nu, L, p, dtype):
    U = coupling_basis(lmax, nu, L, p, dtype=dtype)
    d, n = (lmax + 1) ** 2, U.shape[-1]
    assert U.shape == (2 * L + 1,) + (d,) * nu + (n,) and U.dtype == dtype and n > 0
    for seed, inversion in [(0, False), (1, True), (2, True)]:
        assert equivariance_error(U, lmax, L, p, _random_o3(seed, dtype, inversion)) < TOL[dtype]
    assert symmetry_error(U) < TOL[dtype]
    G = U.reshape(-1, n).T.double() @ U.reshape(-1, n).double()  # Gram matrix of the columns
    assert torch.allclose(G, (2 * L + 1) * torch.eye(n, dtype=torch.float64), atol=10 * TOL[dtype])
    assert torch.linalg.matrix_rank(U.reshape(-1, n).double()).item() == n


def test_checkers_negative_controls():
    U = coupling_basis(2, 2, 1, -1)
    g = _random_o3(3, torch.float64, True)
    assert equivariance_error(U, 2, 1, -1, g) < 1e-12
    assert equivariance_error(U, 2, 1, 1, g) > 0.1  # wrong output parity
    broken = U.clone()
    broken[0, 1, 5, 0] += 0.1
    broken[0, 5, 1, 0] += 0.1  # still symmetric, no longer equivariant
    assert symmetry_error(broken) < 1e-15 and equivariance_error(broken, 2, 1, -1, g) > 1e-3
    broken[0, 1, 5, 0] += 0.1  # no longer symmetric
    assert symmetry_error(broken) > 0.05


def test_correlation_one_is_identity_on_L_block():
    U = coupling_basis(3, 1, 2, 1)  # [5, 16, 1]
    expected = torch.zeros(5, 16, 1, dtype=torch.float64)
    expected[:, 4:9, 0] = torch.eye(5)
    assert torch.equal(U, expected)
    assert coupling_basis(3, 1, 2, -1).shape == (5, 16, 0)


@pytest.mark.parametrize("lmax,nu,L,p", [(2, 2, 1, -1), (1, 3, 1, -1), (2, 3, 0, 1), (1, 3, 2, 1)])
def test_span_equals_fixed_space_of_the_group(lmax, nu, L, p):
    """Independent oracle: the symmetric tensors fixed by T -> D_L^T T (D ⊗ ... ⊗ D) for two random rotations
    and the inversion form the null space of a stacked matrix (SVD); it must equal span(U)."""
    U = coupling_basis(lmax, nu, L, p)
    d, n = (lmax + 1) ** 2, U.shape[-1]
    N = (2 * L + 1) * d**nu
    rows = []
    for seed, inversion in [(11, False), (12, False), (13, True)]:
        g = _random_o3(seed, torch.float64, inversion)
        D = _D(_sh_irreps(lmax), g)
        K = _D(o3.Irrep(L, p), g).T
        for _ in range(nu):
            K = torch.kron(K, D.T)
        rows.append(K - torch.eye(N, dtype=torch.float64))
    for perm in permutations(range(nu)):  # symmetry under permutations of the d indices
        P = torch.eye(N, dtype=torch.float64).reshape((N, 2 * L + 1) + (d,) * nu)
        rows.append(P.permute(0, 1, *[2 + q for q in perm]).reshape(N, N) - torch.eye(N, dtype=torch.float64))
    _, S, Vh = torch.linalg.svd(torch.cat(rows))
    null = Vh[S < 1e-9]  # [dim fixed space, N]
    assert S[S >= 1e-9].min() > 1e-3  # clear gap
    assert null.shape[0] == n
    Q = U.reshape(N, n) / math.sqrt(2 * L + 1)  # orthonormal columns
    if n:
        # principal angles: the projector of one space restricted to the other is the identity
        assert torch.linalg.svdvals(null @ Q).min() > 1 - 1e-10


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_b_functions_match_product_basis_and_are_equivariant(dtype):
    lmax, nu, L, p = 3, 3, 2, 1
    U = coupling_basis(lmax, nu, L, p, dtype=dtype)
    torch.manual_seed(0)
    A = torch.randn(5, 4, 16, dtype=dtype)  # [atoms, channels, d]
    P = product_basis(A, nu)  # [5, 4, 16, 16, 16]
    assert P.shape == (5, 4, 16, 16, 16)
    assert torch.allclose(P[1, 2, 3, 7, 11], A[1, 2, 3] * A[1, 2, 7] * A[1, 2, 11])
    B = b_functions(A, U)  # [5, 4, 5, n_paths]
    assert B.shape == (5, 4, 5, U.shape[-1])
    reference = torch.einsum("Mijkn,...ijk->...Mn", U, P)
    scale = reference.abs().max()
    assert (B - reference).abs().max() < TOL[dtype] * scale
    g = _random_o3(7, dtype, True)
    D = _D(_sh_irreps(lmax), g).to(dtype)
    D_L = _D(o3.Irrep(L, p), g).to(dtype)
    rotated = b_functions(A @ D.T, U)
    assert (rotated - torch.einsum("MN,...Nn->...Mn", D_L, B)).abs().max() < TOL[dtype] * scale
    broken = b_functions(A @ D.T, U.flip(0))  # M index reversed: not equivariant
    assert (broken - torch.einsum("MN,...Nn->...Mn", D_L, b_functions(A, U.flip(0)))).abs().max() > 1e-2 * scale


def test_cache_memory_and_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMACE_CACHE", str(tmp_path))
    symmetric._coupling_basis_numpy.cache_clear()
    U1 = coupling_basis(2, 3, 1, -1)
    files = list(tmp_path.glob("coupling_*.npy"))
    assert len(files) == 1
    symmetric._coupling_basis_numpy.cache_clear()
    U2 = coupling_basis(2, 3, 1, -1)  # read back from disk
    assert torch.equal(U1, U2)
    assert symmetric._coupling_basis_numpy(2, 3, 1, -1) is symmetric._coupling_basis_numpy(2, 3, 1, -1)
    U2.zero_()  # an in-place edit of a returned tensor must not reach the cache
    assert torch.equal(coupling_basis(2, 3, 1, -1), U1)
    symmetric._coupling_basis_numpy.cache_clear()


def test_first_call_is_fast(monkeypatch):
    import time

    monkeypatch.setenv("MINIMACE_CACHE", "off")
    symmetric._coupling_basis_numpy.cache_clear()
    start = time.perf_counter()
    for L in range(4):
        for p in (1, -1):
            coupling_basis(3, 3, L, p)
    assert time.perf_counter() - start < 10.0
    symmetric._coupling_basis_numpy.cache_clear()


def test_coupling_block_with_labels():
    from minimace.symmetric import coupling_block

    # two vectors: one invariant (dot product) and one pseudo-vector (cross product, antisymmetric)
    assert coupling_block((1, 1), 1, pattern=("a", "b")).shape == (1, 3, 3, 3)
    assert coupling_block((1, 1), 1, pattern=("a", "a")).shape == (0, 3, 3, 3)  # u × u = 0
    C = coupling_block((2, 1, 1), 2, pattern=(0, 1, 2))
    assert C.shape[0] == 3  # 1 ⊗ 1 = 0 + 1 + 2, each coupled with 2 -> 2
    G = C.reshape(3, -1) @ C.reshape(3, -1).T
    assert torch.allclose(G, torch.eye(3, dtype=torch.float64), atol=1e-12)
    g = _random_o3(21, torch.float64, True)
    D1, D2 = _D(o3.Irrep(1, -1), g), _D(o3.Irrep(2, 1), g)
    left = torch.einsum("qMabc,aA,bB,cC->qMABC", C, D2, D1, D1)
    assert (left - torch.einsum("MN,qNabc->qMabc", D2, C)).abs().max() < 1e-12
    assert (C - C.transpose(3, 4)).abs().max() > 0.1  # different labels: not symmetric
    with pytest.raises(ValueError):
        coupling_block((1, 2), 1, pattern=("a", "a"))


def _two_neighbours():
    import sympy as sp

    return [sp.Matrix(sp.symbols(f"x{j} y{j} z{j}", real=True)) for j in (1, 2)]


@pytest.mark.parametrize("axis", ["z", "y"])
def test_symbolic_rotation_two_neighbours(axis):
    """Exact proof for ν = 2, l <= 2, two neighbours: B_{L=0} is invariant and B_{L=1} rotates as a vector
    under a symbolic rotation about z and about y (which generate SO(3)); the difference is exactly 0."""
    import sympy as sp

    from minimace.symmetric import reduce_trig, symbolic_atomic_basis, symbolic_b_functions, symbolic_rotation, to_sympy

    R, r = symbolic_rotation(axis), _two_neighbours()
    A, A_rot = symbolic_atomic_basis(r, 2), symbolic_atomic_basis([R * v for v in r], 2)
    for L, parity in [(0, 1), (1, -1)]:
        U = to_sympy(coupling_basis(2, 2, L, parity))
        D = sp.eye(1) if L == 0 else R  # D_1(R) = R in the basis √3 (x, y, z)
        residual = symbolic_b_functions(U, A_rot) - D * symbolic_b_functions(U, A)
        assert all(reduce_trig(value) == 0 for value in residual)
    # negative control: the l = 1 block with a wrong weight is not invariant
    U = to_sympy(coupling_basis(2, 2, 0, 1)).tolist()
    U[0][1][1][1] *= 2  # path 1 is the l = 1 block: Σ_m A_1m² + A_1,-1² is not invariant
    U = sp.Array(U)
    diff = symbolic_b_functions(U, A_rot, path=1)[0] - symbolic_b_functions(U, A, path=1)[0]
    assert reduce_trig(diff) != 0


@pytest.mark.parametrize("axis", ["z", "y"])
def test_symbolic_three_body_invariant(axis):
    """Exact proof for one ν = 3 invariant (the (1, 1, 2) block of coupling_basis(2, 3, 0, +1)); a coefficient
    changed on one entry breaks it."""
    import sympy as sp

    from minimace.symmetric import reduce_trig, symbolic_atomic_basis, symbolic_b_functions, symbolic_rotation, to_sympy

    U = to_sympy(coupling_basis(2, 3, 0, 1))  # [1, 9, 9, 9, 5]
    eta = 3
    assert U[0, 1, 1, 6, eta] != 0 and U[0, 0, 0, 0, eta] == 0  # the (1, 1, 2) block: a genuine three-body term
    R, r = symbolic_rotation(axis), _two_neighbours()
    A, A_rot = symbolic_atomic_basis(r, 2), symbolic_atomic_basis([R * v for v in r], 2)
    before, after = symbolic_b_functions(U, A, path=eta)[0], symbolic_b_functions(U, A_rot, path=eta)[0]
    assert reduce_trig(after - before) == 0
    # negative control: doubling the entry U[0, 1, 1, 6] adds U[0, 1, 1, 6] A_1 A_1 A_6 to B, not invariant
    assert reduce_trig(U[0, 1, 1, 6, eta] * (A_rot[1] ** 2 * A_rot[6] - A[1] ** 2 * A[6])) != 0


def test_symbolic_rotation_rejects_other_axes():
    from minimace.symmetric import symbolic_rotation

    with pytest.raises(ValueError, match="axis"):
        symbolic_rotation("x")


@pytest.mark.parametrize("nu", [1, 2, 3])
def test_density_trick(nu):
    """Σ_{j1..jν} φ_j1 ⊗ ... ⊗ φ_jν (self-interactions included) = A ⊗ ... ⊗ A with A = Σ_j φ_j."""
    from minimace.symmetric import neighbour_product_sum

    gen = torch.Generator().manual_seed(nu)
    phi = torch.randn(6, 9, dtype=torch.float64, generator=gen)  # 6 neighbours, l_max = 2
    left, right = neighbour_product_sum(phi, nu), product_basis(phi.sum(0), nu)
    assert left.shape == (9,) * nu
    torch.testing.assert_close(left, right, atol=1e-12, rtol=1e-12)
    if nu == 2:  # negative control: without the self-interactions j1 = j2 the two sides differ
        distinct_pairs = left - phi.T @ phi  # Σ_{j1 != j2} φ_j1 ⊗ φ_j2
        assert (distinct_pairs - right).abs().max() > 1e-3


def test_rank_gap_is_wide():
    """The residuals of dependent candidates are at rounding level and those kept are O(1): the thresholds
    _TOL_ZERO and _TOL_KEEP lie inside the gap."""
    dependent, kept = symmetric.rank_gap(2, 3)
    assert dependent < 1e-14 and kept > 0.1
    assert dependent < symmetric._TOL_ZERO < symmetric._TOL_KEEP < kept
    dependent, kept = symmetric.rank_gap(3, 2)
    assert math.isnan(dependent) and kept > 0.1  # ν = 2: every symmetrised coupling tree is independent


def test_symbolic_helpers_agree_with_the_numeric_stages():
    """The exact proofs are about the package's own functions: at numeric positions, symbolic_atomic_basis is
    Σ_j |r_j|^l Y_lm(r̂_j) (spherical_harmonics, normalize=False) and symbolic_b_functions is b_functions."""
    import sympy as sp

    from minimace.so3 import spherical_harmonics
    from minimace.symmetric import symbolic_atomic_basis, symbolic_b_functions, to_sympy

    r = _two_neighbours()
    values = torch.tensor([[0.3, -1.1, 0.7], [1.2, 0.4, -0.5]], dtype=torch.float64)
    subs = {s: float(v) for vec, row in zip(r, values) for s, v in zip(vec, row)}
    A_sym = [float(sp.sympify(a).subs(subs)) for a in symbolic_atomic_basis(r, 2)]
    A_num = spherical_harmonics(2, values, normalize=False).sum(0)  # [9]
    torch.testing.assert_close(torch.tensor(A_sym, dtype=torch.float64), A_num, atol=1e-12, rtol=1e-12)
    U = coupling_basis(2, 3, 0, 1)
    B_sym = symbolic_b_functions(to_sympy(U), A_sym)  # numbers in, numbers out
    B_num = b_functions(A_num, U)  # [1, 5]
    torch.testing.assert_close(torch.tensor([[float(v) for v in B_sym]], dtype=torch.float64), B_num,
                               atol=1e-12, rtol=1e-12)
