"""Teacher source of exercise 9: the solution, its notes and the wrong answers (negative controls)."""

import torch

NOTES = r"""**Line ↔ equation**: `W_nu[species]` is $W^{(\nu)}_{z_i,\eta,k}$ gathered per atom (`[N, n_paths, K]`); the `einsum`
sums over the paths $\eta$ (`p`) and keeps the atom $i$, the channel $k$ and the component $M$; the loop adds
the orders $\nu$. The same weight multiplies every $M$ of a path, which is why $m_i$ rotates like $B$ does.
The package evaluates the same sum without ever forming $B$ (mace-torch's recursion, `minimace.message`)."""


def message(B: list, W: list, species: torch.Tensor) -> torch.Tensor:
    """m_{i,kM} = Σ_ν Σ_η W^(ν)_{z_i,η,k} B^(ν)_{i,k,M,η}: B[ν-1] [N, K, 2L+1, n_paths] -> [N, K, 2L+1]."""
    # BEGIN SOLUTION
    m = 0
    for B_nu, W_nu in zip(B, W):  # ν = 1, 2, ...
        m = m + torch.einsum("nkmp,npk->nkm", B_nu, W_nu[species])  # Σ_η, W of each atom's element
    return m  # [N, K, 2L+1]
    # END SOLUTION


def wrong_element_zero(B, W, species):
    """Uses the weights of element 0 for every atom."""
    return message(B, W, torch.zeros_like(species))


def wrong_no_nu1(B, W, species):
    """Starts the sum at ν = 2."""
    return message(B[1:], W[1:], species)


def wrong_highest_only(B, W, species):
    """Keeps only the highest correlation order."""
    return message(B[-1:], W[-1:], species)


def wrong_channels_mixed(B, W, species):
    """Sums over the channels as in a dense layer."""
    return sum(torch.einsum("nkmp,npq->nqm", b, w[species]) for b, w in zip(B, W))


def wrong_axes(B, W, species):
    """Returns [N, 2L+1, K]."""
    return message(B, W, species).transpose(1, 2)


def wrong_weight_per_m(B, W, species):
    """Lets the weight depend on M (uses the first K weights as if they were per component): not equivariant."""
    return sum(torch.einsum("nkmp,npk->nkm", b, w[species]) * torch.tensor([1.0, 2.0, 3.0], dtype=b.dtype)
               for b, w in zip(B, W))


WRONG_ANSWERS = {
    "weights of element 0": (wrong_element_zero, "convention", "index W by the centre atom's element"),
    "no ν = 1": (wrong_no_nu1, "value", "the ν = 1 term is missing"),
    "highest ν only": (wrong_highest_only, "value", "only the highest order"),
    "channels mixed": (wrong_channels_mixed, "value", "channels are mixed"),
    "axes swapped": (wrong_axes, "shape", "axis 1 holds M"),
    "weight depends on M": (wrong_weight_per_m, "equivariance", "not equivariant"),
}
