"""The coupling basis of minimace spans exactly the symmetric part of mace-torch's (over-complete) U tensors.

Runs in the second environment (.venv-mace, mace-torch 0.3.16); collected there by tests/test_mace_environment.py.
Only the symmetric part of a coupling tensor meets the product basis (Eq. 9), so mace-torch's U is symmetrised over
its input indices before comparing spans.
"""

import itertools

import mace  # noqa: F401  (must be imported before e3nn.o3 in this environment)
import pytest
import torch
from mace.tools.cg import U_matrix_real

from minimace.symmetric import coupling_basis


def _symmetrise(U, nu):
    perms = list(itertools.permutations(range(nu)))
    return sum(U.permute(0, *[1 + p for p in perm], nu + 1) for perm in perms) / len(perms)


@pytest.mark.parametrize("lmax,nu,L,p", [(2, 2, 0, 1), (2, 2, 1, -1), (3, 2, 2, 1), (3, 3, 0, 1), (3, 3, 1, -1),
                                         (2, 3, 2, 1), (2, 3, 3, -1)])
def test_same_span_as_mace_torch(lmax, nu, L, p):
    irreps_in = "+".join(f"1x{l}{'eo'[l % 2]}" for l in range(lmax + 1))
    irreps_out = f"1x{L}{'eo'[(1 - p) // 2]}"
    U_mace = U_matrix_real(irreps_in, irreps_out, nu, dtype=torch.float64, use_cueq_cg=False)[-1]
    if L == 0:
        U_mace = U_mace.unsqueeze(0)  # mace-torch drops the M axis of scalars
    U_mace = _symmetrise(U_mace.double(), nu)
    U = coupling_basis(lmax, nu, L, p)
    assert U.shape[:-1] == U_mace.shape[:-1]
    M_mace, M = U_mace.reshape(-1, U_mace.shape[-1]), U.reshape(-1, U.shape[-1])
    s = torch.linalg.svdvals(M_mace)
    rank = int((s > 1e-10 * s.max()).sum())
    assert rank == M.shape[1], (rank, M.shape[1])  # mace's over-complete set has the same rank
    # every column of mace's symmetrised U lies in span(U), and vice versa (equal dimensions)
    Q = torch.linalg.qr(M).Q
    residual = M_mace - Q @ (Q.T @ M_mace)
    assert residual.abs().max() < 1e-10 * M_mace.abs().max()


def test_negative_control_different_span_is_detected():
    U_mace = _symmetrise(U_matrix_real("1x0e+1x1o+1x2e", "1x1o", 2, dtype=torch.float64, use_cueq_cg=False)[-1], 2)
    U = coupling_basis(2, 2, 1, -1).clone()
    U[..., 0] = _symmetrise(torch.randn_like(U[..., :1]), 2)[..., 0]  # one path replaced: a different space
    Q = torch.linalg.qr(U.reshape(-1, U.shape[-1])).Q
    M_mace = U_mace.reshape(-1, U_mace.shape[-1])
    assert (M_mace - Q @ (Q.T @ M_mace)).abs().max() > 1e-3 * M_mace.abs().max()
