"""Teacher source of exercise 4: the solution, its notes and the wrong answers (negative controls)."""

from typing import Callable

import torch

from minimace.atomic_basis import scatter_sum
from minimace.so3 import spherical_harmonics

NOTES = r"""**Line ↔ equation**: `i, j` are the centre and the neighbour of every edge; `vectors` is
$\mathbf r_{ij} = \mathbf r_j - \mathbf r_i$; `phi` is $\phi_{klm}(\mathbf r_{ij}) = R_k(r_{ij}) Y_l^m(\hat{\mathbf r}_{ij})$
`[E, K, (lmax+1)²]`; `index_add` performs $\sum_{j \in \mathcal N(i)}$ by adding each edge into the row of its centre."""


def atomic_basis(positions: torch.Tensor, edge_index: torch.Tensor, radial: Callable, lmax: int) -> torch.Tensor:
    """A_{i,klm} = Σ_j R_k(r_ij) Y_lm(r̂_ij): ``positions`` [N, 3], ``edge_index`` [2, E] -> [N, K, (lmax+1)**2]."""
    # BEGIN SOLUTION
    i, j = edge_index  # centre, neighbour: [E] each
    vectors = positions[j] - positions[i]  # r_ij: [E, 3]
    R = radial(vectors.norm(dim=-1, keepdim=True))  # [E, K]
    Y = spherical_harmonics(lmax, vectors)  # [E, (lmax+1)**2]
    phi = R[:, :, None] * Y[:, None, :]  # [E, K, (lmax+1)**2]
    A = positions.new_zeros((positions.shape[0],) + phi.shape[1:])  # [N, K, (lmax+1)**2]
    return A.index_add(0, i, phi)
    # END SOLUTION


def wrong_direction(positions, edge_index, radial, lmax):
    """r_ji = pos[i] - pos[j] instead of r_ij."""
    return atomic_basis(-positions, edge_index, radial, lmax)


def wrong_mean(positions, edge_index, radial, lmax):
    """Averages over the neighbours."""
    counts = torch.bincount(edge_index[0], minlength=positions.shape[0]).clamp_min(1).to(positions.dtype)
    return atomic_basis(positions, edge_index, radial, lmax) / counts[:, None, None]


def wrong_row(positions, edge_index, radial, lmax):
    """Sums each edge into its neighbour (row 1) instead of its centre."""
    vectors = positions[edge_index[1]] - positions[edge_index[0]]
    phi = radial(vectors.norm(dim=-1, keepdim=True))[:, :, None] * spherical_harmonics(lmax, vectors)[:, None, :]
    return scatter_sum(phi, edge_index[1], positions.shape[0])


def wrong_absolute_positions(positions, edge_index, radial, lmax):
    """Uses the neighbour's absolute position instead of the edge vector for the angles."""
    vectors = positions[edge_index[1]] - positions[edge_index[0]]
    Y = spherical_harmonics(lmax, positions[edge_index[1]])
    phi = radial(vectors.norm(dim=-1, keepdim=True))[:, :, None] * Y[:, None, :]
    return scatter_sum(phi, edge_index[0], positions.shape[0])


def wrong_axes_swapped(positions, edge_index, radial, lmax):
    """Returns [N, (lmax+1)**2, K] (the outer product taken the other way round)."""
    return atomic_basis(positions, edge_index, radial, lmax).transpose(1, 2)


WRONG_ANSWERS = {
    "edge direction": (wrong_direction, "convention", "the edge vector points"),
    "mean": (wrong_mean, "normalisation", "mean over neighbours"),
    "wrong row": (wrong_row, "convention", "edge_index[0]"),
    "absolute positions": (wrong_absolute_positions, "equivariance", "translation"),
    "k and lm axes swapped": (wrong_axes_swapped, "shape", "axis 1 holds lm"),
}
