"""Message m_i = Σ_ν Σ_η W_{z_i,η} B^{(ν)}_η (MACE Eq. 10–11): recursion vs direct sum, U conventions."""

import pytest
import torch

from minimace.message import Contraction, SymmetricContraction
from minimace.so3 import Irrep
from minimace.symmetric import product_basis
from minimace.testing import assert_equivariant

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
LMAX, K, N_EL = 2, 3, 2


def direct_message(c: Contraction, A: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
    """Eq. 10–11 term by term: B^{(ν)} = U^{(ν)} · (A ⊗ ... ⊗ A), m = Σ_ν W^{(ν)}_{z_i} B^{(ν)}."""
    A = A.double()
    m = 0
    for nu in range(1, c.correlation + 1):
        U = c.U(nu).double()  # [M, d.., P]
        prod = product_basis(A, nu)  # [n, k, d..]
        B = torch.einsum("mqp,nkq->nkmp", U.reshape(U.shape[0], prod[0, 0].numel(), U.shape[-1]), prod.reshape(*A.shape[:2], -1))
        m = m + torch.einsum("nkmp,npk->nkm", B, c.weights[nu - 1].double()[species])
    return m.reshape(A.shape[0], -1)


def inputs(dtype, n=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, K, (LMAX + 1) ** 2, generator=g, dtype=dtype)
    species = torch.randint(0, N_EL, (n,), generator=g)
    return A, species


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L,p", [(0, 1), (1, -1), (2, 1), (1, 1)])
def test_recursion_equals_direct_sum(dtype, L, p):
    torch.manual_seed(0)
    c = Contraction(LMAX, Irrep(L, p), 3, N_EL, K).to(dtype)
    A, species = inputs(dtype)
    m = c(A, species)
    assert m.shape == (7, K * (2 * L + 1))
    torch.testing.assert_close(m.double(), direct_message(c, A, species), atol=TOL[dtype], rtol=TOL[dtype])


def test_overcomplete_and_nonsymmetric_U_give_the_same_message():
    """mace-torch's U tensors are over-complete and not symmetric: only their symmetric part matters."""
    torch.manual_seed(0)
    c = Contraction(LMAX, Irrep(0, 1), 2, N_EL, K).double()
    A, species = inputs(torch.float64)
    m = c(A, species)
    U, W = c.U(2).clone(), c.weights[1].detach().clone()  # [1, d, d, P], [E, P, K]
    antisym = torch.randn_like(U)
    antisym = antisym - antisym.transpose(1, 2)
    U_new = torch.cat([U + antisym, U], dim=-1)  # duplicated paths, non-symmetric
    c.set_U(2, U_new)
    with torch.no_grad():
        c.weights[1].copy_(torch.cat([0.25 * W, 0.75 * W], dim=1))
    torch.testing.assert_close(c(A, species), m, atol=1e-12, rtol=1e-12)
    # negative control: a non-equivariant change of the symmetric part changes m
    c.set_U(2, U_new + 0.1 * torch.randn_like(U_new))
    with torch.no_grad():
        c.weights[1].copy_(torch.cat([0.25 * W, 0.75 * W], dim=1))
    assert (c(A, species) - m).abs().max() > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
def test_symmetric_contraction_is_equivariant(dtype):
    torch.manual_seed(0)
    irreps_in, irreps_out = f"{K}x0e+{K}x1o+{K}x2e", f"{K}x0e+{K}x1o+{K}x2e+{K}x1e"
    sc = SymmetricContraction(irreps_in, irreps_out, 3, N_EL).to(dtype)
    A, species = inputs(dtype)
    A = torch.cat([A[:, :, l * l : (l + 1) ** 2].reshape(7, -1) for l in range(LMAX + 1)], dim=-1)

    def f(A, species):
        return sc(A, species)

    assert_equivariant(f, (A, species), (irreps_in, None), irreps_out, atoms_in=("atoms", "atoms"),
                       atoms_out="atoms")


def test_equivariance_check_catches_a_random_coupling_tensor():
    """Negative control: a random (non-equivariant) U^{(2)} must fail the rotation test."""
    torch.manual_seed(0)
    irreps_in, irreps_out = f"{K}x0e+{K}x1o+{K}x2e", f"{K}x1o"
    sc = SymmetricContraction(irreps_in, irreps_out, 2, N_EL).double()
    sc.contractions[0].set_U(2, torch.randn(3, 9, 9, 2, dtype=torch.float64))
    with torch.no_grad():
        sc.contractions[0].weights[1].normal_()
    A, species = inputs(torch.float64)
    A = torch.cat([A[:, :, l * l : (l + 1) ** 2].reshape(7, -1) for l in range(LMAX + 1)], dim=-1)
    with pytest.raises(AssertionError):
        assert_equivariant(lambda A: sc(A, species), (A,), (irreps_in,), irreps_out,
                           tests=("rotation",))


def test_wrong_irreps_are_rejected():
    with pytest.raises(ValueError):
        SymmetricContraction("3x0e+3x1e", "3x0e", 2, 2)
    with pytest.raises(ValueError):
        SymmetricContraction("3x0e+3x1o", "4x0e", 2, 2)
