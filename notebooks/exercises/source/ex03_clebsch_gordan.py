"""Teacher source of exercise 3: the solution, its notes and the wrong answers (negative controls)."""

import math

import torch

from minimace.so3 import clebsch_gordan

NOTES = r"""**Line ↔ equation**: `C` is $C^{LM}_{1a,1b}$ `[3, 3, 2L+1]`; the `einsum` sums over $a$ (`u`) and $b$ (`v`)
and keeps $M$ (`c`); the blocks are concatenated in the order $L = 0, 1, 2$ of the irreps `0e+1e+2e`."""


def couple_vectors(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(u ⊗ v)_{LM} = Σ_ab C^{LM}_{1a,1b} u_a v_b for L = 0, 1, 2: ``u``, ``v`` [n, 3] -> [n, 9]."""
    # BEGIN SOLUTION
    blocks = []
    for L in (0, 1, 2):
        C = clebsch_gordan(1, 1, L, dtype=u.dtype, device=u.device)  # [3, 3, 2L+1]
        blocks.append(torch.einsum("abc,na,nb->nc", C, u, v))  # [n, 2L+1]
    return torch.cat(blocks, dim=-1)  # [n, 1 + 3 + 5]
    # END SOLUTION


def wrong_wigner_3j(u, v):
    """Uses the Wigner-3j symbols (Frobenius norm 1) instead of the Clebsch–Gordan coefficients."""
    out = couple_vectors(u, v)
    return torch.cat([out[:, :1], out[:, 1:4] / math.sqrt(3), out[:, 4:] / math.sqrt(5)], -1)


def wrong_swapped(u, v):
    """Contracts C_{abM} with v_a u_b."""
    return couple_vectors(v, u)


def wrong_outer_product(u, v):
    """The Cartesian outer product u v^T, flattened: right size, wrong basis."""
    return (u[:, :, None] * v[:, None, :]).reshape(-1, 9)


def wrong_l2_basis(u, v):
    """Right L = 0 and L = 1; the L = 2 block in another basis (its components in the textbook order)."""
    out = couple_vectors(u, v)
    return torch.cat([out[:, :4], out[:, [6, 7, 8, 4, 5]]], -1)


def wrong_l2_cartesian(u, v):
    """Right L = 0 and L = 1; L = 2 as five Cartesian entries of the symmetric traceless matrix (another basis)."""
    out = couple_vectors(u, v)
    S = (u[:, :, None] * v[:, None, :] + v[:, :, None] * u[:, None, :]) / 2
    S = S - torch.eye(3, dtype=u.dtype) * S.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None] / 3
    l2 = torch.stack([S[:, 0, 1], S[:, 1, 2], S[:, 0, 2], S[:, 0, 0] - S[:, 1, 1], S[:, 2, 2]], -1)
    return torch.cat([out[:, :4], l2], -1)


WRONG_ANSWERS = {
    "wigner_3j": (wrong_wigner_3j, "normalisation", "wigner_3j"),
    "u and v swapped": (wrong_swapped, "convention", "swapped"),
    "outer product": (wrong_outer_product, "value", "the L=0 block"),
    "L=2 components permuted": (wrong_l2_basis, "convention", "L=0 and L=1 are right; the L=2 block"),
    "L=2 Cartesian": (wrong_l2_cartesian, "convention", "L=0 and L=1 are right; the L=2 block"),
}
