r"""# Exercise 4 — The atomic basis $A_i = \sum_j \phi(\mathbf r_{ij})$: a sum over neighbours

**What you will learn**: how a graph stores neighbours (`edge_index`), which way the edge vector points, and
how a scatter-sum over edges turns one-particle functions into a permutation-invariant, rotation-equivariant
description of each atom's environment.

**Prerequisites**: notebooks 01 and 02; exercises 1 and 2.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697), Eq. (7)–(8); Drautz, PRB 99, 014104 (2019), Eq. (4).

## The task

Write `atomic_basis(positions, edge_index, radial, lmax)` returning, for `positions` `[N, 3]` and
`edge_index` `[2, E]` (row 0 the centre $i$, row 1 the neighbour $j$, as in docs/ARCHITECTURE.md),

$$ A_{i,klm} = \sum_{j \in \mathcal N(i)} R_k(r_{ij})\, Y_l^m(\hat{\mathbf r}_{ij}), \qquad
\mathbf r_{ij} = \mathbf r_j - \mathbf r_i , $$

with shape `[N, K, (lmax+1)**2]`, where `radial` maps distances `[E, 1]` to `[E, K]` and
`spherical_harmonics(lmax, vectors)` (from `minimace.so3`) gives the $Y_l^m$ `[E, (lmax+1)**2]`.
(This is the first-layer $A$ without chemical weights; MACE adds them in `minimace.atomic_basis`.)

The checker builds the graph of a real molecule (ethanol from the bundled GFN2-xTB set), compares with
`scatter_sum` of the package, also on a one-way (non-symmetric) edge list, and runs `assert_equivariant`
for rotations, reflections, translations and permutations of the atoms.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..atomic_basis import scatter_sum
from ..datasets import bundled
from ..graph import atoms_to_graph
from ..radial import BesselBasis, PolynomialCutoff
from ..so3 import spherical_harmonics
from ._check import DTYPES, ExerciseFailure, expect_close, expect_equivariant, expect_shape, run_checks

TITLE = "Exercise 4 (atomic basis A)"
STUDENT_FUNCTION = "atomic_basis"
NOTEBOOK_IMPORTS = [
    "from typing import Callable", "", "import torch", "", "from minimace.so3 import spherical_harmonics",
]
HINT = "vectors = positions[j] - positions[i]; phi = R[:, :, None] * Y[:, None, :]; sum into the centres with index_add"
NOTES = r"""**Line ↔ equation**: `i, j` are the centre and the neighbour of every edge; `vectors` is
$\mathbf r_{ij} = \mathbf r_j - \mathbf r_i$; `phi` is $\phi_{klm}(\mathbf r_{ij}) = R_k(r_{ij}) Y_l^m(\hat{\mathbf r}_{ij})$
`[E, K, (lmax+1)²]`; `index_add` performs $\sum_{j \in \mathcal N(i)}$ by adding each edge into the row of its centre."""

R_MAX, LMAX = 3.0, 2


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


def radial_features(r: torch.Tensor) -> torch.Tensor:
    """The radial functions used by the checker: 4 Bessel functions × envelope, ``[E, 1] -> [E, 4]``."""
    return BesselBasis(R_MAX, 4)(r) * PolynomialCutoff(R_MAX, 5)(r)


def reference(positions: torch.Tensor, edge_index: torch.Tensor, radial: Callable, lmax: int) -> torch.Tensor:
    """The package's way: edge vectors, one-particle functions, ``scatter_sum`` over the centres."""
    vectors = positions[edge_index[1]] - positions[edge_index[0]]
    phi = radial(vectors.norm(dim=-1, keepdim=True))[:, :, None] * spherical_harmonics(lmax, vectors)[:, None, :]
    return scatter_sum(phi, edge_index[0], positions.shape[0])


def molecule(dtype: torch.dtype = torch.float64) -> dict:
    """The graph of the first bundled ethanol configuration with cutoff ``R_MAX``."""
    config = bundled("train", index=":1")[0]
    return atoms_to_graph(config.to_atoms(), R_MAX, dtype=dtype)


def _one_way(edge_index: torch.Tensor) -> torch.Tensor:
    """Keep only the edges with i < j: then summing over the wrong row gives a different answer."""
    return edge_index[:, edge_index[0] < edge_index[1]]


def _parity_flipped(A: torch.Tensor, lmax: int) -> torch.Tensor:
    sign = torch.cat([torch.full((2 * l + 1,), (-1.0) ** l, dtype=A.dtype) for l in range(lmax + 1)])
    return A * sign


def _diagnose(out, pos, edge_index, ref) -> None:
    """Name the usual mistakes; run on the one-way edge list, where they all give different numbers."""
    close = lambda a, b: torch.allclose(a, b, rtol=1e-8, atol=1e-10)  # noqa: E731
    if close(out, ref):
        return
    if close(out, _parity_flipped(ref, LMAX)):
        raise ExerciseFailure("convention", "the odd-l parts have the wrong sign: the edge vector points from the "
                              "centre i = edge_index[0] to the neighbour j = edge_index[1], r_ij = pos[j] - pos[i]")
    counts = torch.bincount(edge_index[0], minlength=pos.shape[0]).clamp_min(1).to(ref.dtype)
    if close(out, ref / counts[:, None, None]):
        raise ExerciseFailure("normalisation", "this is the mean over neighbours; A is their sum")
    flipped = reference(pos, edge_index.flip(0), radial_features, LMAX)
    if close(out, _parity_flipped(flipped, LMAX)) or close(out, flipped):
        raise ExerciseFailure("convention", "the sum runs over the edges whose centre is atom i, i.e. "
                              "index_add over edge_index[0] (row 1 holds the neighbours)")


def check(fn, verbose: bool = True):
    """Check ``fn(positions, edge_index, radial, lmax)`` on ethanol against ``scatter_sum`` and for symmetry."""

    def step_value(dtype, one_way=False):
        def step():
            graph = molecule(dtype)
            pos, edge_index = graph["positions"], graph["edge_index"]
            if one_way:
                edge_index = _one_way(edge_index)
            out = fn(pos, edge_index, radial_features, LMAX)
            expect_shape(out, (pos.shape[0], 4, (LMAX + 1) ** 2), "A")
            ref = reference(pos, edge_index, radial_features, LMAX)
            if one_way and out.dtype == dtype:
                _diagnose(out, pos, edge_index, ref)
                symmetric = lambda p, e: fn(p, e, radial_features, LMAX)  # noqa: E731
                if not torch.allclose(out, ref, rtol=1e-8, atol=1e-10):
                    expect_equivariant(symmetric, (pos, edge_index), ("cartesian_points", None), "0e+1o+2e",
                                       tests=("rotation", "reflection", "translation"))
            return expect_close(out, ref, f"A ({dtype}{', one-way edges' if one_way else ''})")
        return step

    def step_symmetries():
        graph = molecule(torch.float64)
        f = lambda p, e: fn(p, e, radial_features, LMAX)  # noqa: E731
        return expect_equivariant(f, (graph["positions"], graph["edge_index"]), ("cartesian_points", None),
                                  "0e+1o+2e", atoms_in=("atoms", "atom_index"), atoms_out="atoms")

    steps = [("values with one-way edges (i < j only)", step_value(torch.float64, one_way=True))]
    steps += [(f"values in {str(d)[6:]}", step_value(d)) for d in DTYPES]
    steps.append(("rotation, reflection, translation, permutation of atoms", step_symmetries))
    return run_checks(TITLE, steps, verbose)


# plausible wrong answers, used by the tests as negative controls
def wrong_direction(positions, edge_index, radial, lmax):
    """r_ji = pos[i] - pos[j] instead of r_ij."""
    vectors = positions[edge_index[0]] - positions[edge_index[1]]
    phi = radial(vectors.norm(dim=-1, keepdim=True))[:, :, None] * spherical_harmonics(lmax, vectors)[:, None, :]
    return scatter_sum(phi, edge_index[0], positions.shape[0])


def wrong_mean(positions, edge_index, radial, lmax):
    """Averages over the neighbours."""
    counts = torch.bincount(edge_index[0], minlength=positions.shape[0]).clamp_min(1).to(positions.dtype)
    return reference(positions, edge_index, radial, lmax) / counts[:, None, None]


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


WRONG_ANSWERS = {"edge direction": wrong_direction, "mean": wrong_mean, "wrong row": wrong_row,
                 "absolute positions": wrong_absolute_positions}
