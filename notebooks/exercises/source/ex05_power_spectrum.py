"""Teacher source of exercise 5: the solution, its notes and the wrong answers (negative controls)."""

import torch

NOTES = r"""**Line ↔ equation**: `block` is $A_{i,k l m}$ for one $l$ (`[N, K, 2l+1]`, the slice $l^2 \dots (l+1)^2 - 1$);
the `einsum` sums over $m$ and keeps both channels $k, k'$; `torch.stack(..., dim=-1)` puts $l$ last."""


def power_spectrum(A: torch.Tensor, lmax: int) -> torch.Tensor:
    """p_{i,kk'l} = Σ_m A_{i,klm} A_{i,k'lm}: ``A`` [N, K, (lmax+1)**2] -> [N, K, K, lmax+1]."""
    # BEGIN SOLUTION
    p = []
    for l in range(lmax + 1):
        block = A[..., l * l : (l + 1) ** 2]  # [N, K, 2l+1]
        p.append(torch.einsum("nkm,nqm->nkq", block, block))  # [N, K, K]
    return torch.stack(p, dim=-1)  # [N, K, K, lmax+1]
    # END SOLUTION


def wrong_block_slices(A, lmax):
    """Slices block l as ``l : 3l+1`` (forgets that the blocks before it have Σ (2l'+1) = l² entries)."""
    blocks = [A[..., l : 3 * l + 1] for l in range(lmax + 1)]
    return torch.stack([torch.einsum("nkm,nqm->nkq", b, b) for b in blocks], dim=-1)


def wrong_mean_over_m(A, lmax):
    """Averages over m instead of summing."""
    return power_spectrum(A, lmax) / torch.tensor([2 * l + 1 for l in range(lmax + 1)], dtype=A.dtype)


def wrong_sum_first(A, lmax):
    """Sums the components first, then squares: (Σ_m A_klm)(Σ_m A_k'lm), not invariant."""
    blocks = [A[..., l * l : (l + 1) ** 2].sum(-1) for l in range(lmax + 1)]
    return torch.stack([b[:, :, None] * b[:, None, :] for b in blocks], dim=-1)


def wrong_diagonal_only(A, lmax):
    """Only k = k' (misses the cross-channel products)."""
    return torch.diagonal(power_spectrum(A, lmax), dim1=1, dim2=2)


def wrong_l_first(A, lmax):
    """Stacks l first: [N, lmax+1, K, K]."""
    return power_spectrum(A, lmax).movedim(-1, 1)


def wrong_l2_scaled(A, lmax):
    """Right l = 0, 1; the l = 2 invariant divided by 5 (a mean over m in one block only)."""
    p = power_spectrum(A, lmax)
    return torch.cat([p[..., :2], p[..., 2:] / 5], -1)


WRONG_ANSWERS = {
    "block slices": (wrong_block_slices, "equivariance", "p[..., l=2] is not invariant"),
    "mean over m": (wrong_mean_over_m, "normalisation", "mean over m"),
    "sum then square": (wrong_sum_first, "equivariance", "p[..., l=1] is not invariant"),
    "diagonal only": (wrong_diagonal_only, "shape", "expected [atom=5, k=4, k'=4, l=3]"),
    "l axis first": (wrong_l_first, "shape", "axis 1 holds l (length 3)"),
    "l=2 scaled": (wrong_l2_scaled, "normalisation", "l=0 and l=1 are right; the l=2 block"),
}
