r"""# Exercise 4 — The atomic basis $A_i = \sum_j \phi(\mathbf r_{ij})$: a sum over neighbours

**What you will learn**: how a graph stores neighbours (`edge_index`), which way the edge vector points, and
how a scatter-sum over edges turns one-particle functions into a permutation-invariant, rotation-equivariant
description of each atom's environment.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697 v2), section 3 (the atomic basis, the first layer without
its chemical weights); Drautz, PRB 99, 014104 (2019), Eq. (4).

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
for rotations, reflections, translations and permutations of the atoms. Its inputs have 9 atoms, $K = 4$ radial
functions and $l_\max = 3$ (16 components), so that an answer with two axes swapped is caught.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..atomic_basis import scatter_sum
from ..datasets import bundled
from ..graph import atoms_to_graph
from ..radial import BesselBasis, PolynomialCutoff
from ..so3 import spherical_harmonics
from ._check import (DTYPES, expect_blocks, expect_close, expect_equivariant, expect_shape,
                     first_match, make_hint, run_checks)

TITLE = "Exercise 4 (atomic basis A)"
STUDENT_FUNCTIONS = ("atomic_basis",)
META = {"kind": "exercise", "difficulty": "intermediate", "minutes": 30, "prerequisites": ("01", "02")}
NOTEBOOK_IMPORTS = [
    "from typing import Callable", "", "import torch", "", "from minimace.so3 import spherical_harmonics",
]
HINTS = (
    "Every edge (i, j) contributes one product R_k(r_ij) Y_lm(r̂_ij) to its centre atom i; A_i is the sum of the "
    "contributions of the edges whose centre is i.",
    "i, j = edge_index (row 0 the centre, row 1 the neighbour); the edge vector is positions[j] - positions[i]; "
    "the outer product over k and lm is R[:, :, None] * Y[:, None, :]; Tensor.index_add sums rows into atoms.",
    "vectors = positions[j] - positions[i]; phi = radial(vectors.norm(dim=-1, keepdim=True))[:, :, None] * "
    "spherical_harmonics(lmax, vectors)[:, None, :]; return positions.new_zeros(N, K, d).index_add(0, i, phi)",
)
hint = make_hint(HINTS)

R_MAX, LMAX, K = 3.0, 3, 4
IRREPS = "0e+1o+2e+3o"
AXES = ("atom", "k", "lm")
BLOCKS = tuple((f"l={l}", slice(l * l, (l + 1) ** 2)) for l in range(LMAX + 1))


def radial_features(r: torch.Tensor) -> torch.Tensor:
    """The radial functions given to the student's function: 4 Bessel functions × envelope, ``[E, 1] -> [E, 4]``."""
    return BesselBasis(R_MAX, K)(r) * PolynomialCutoff(R_MAX, 5)(r)


def molecule(dtype: torch.dtype = torch.float64) -> dict:
    """The graph of the first bundled ethanol configuration (9 atoms) with cutoff ``R_MAX``."""
    config = bundled("train", index=":1")[0]
    return atoms_to_graph(config.to_atoms(), R_MAX, dtype=dtype)


def _one_way(edge_index: torch.Tensor) -> torch.Tensor:
    """Keep only the edges with i < j: then summing over the wrong row gives a different answer."""
    return edge_index[:, edge_index[0] < edge_index[1]]


def check(fn, verbose: bool = True):
    """Check ``fn(positions, edge_index, radial, lmax)`` on ethanol against ``scatter_sum`` and for symmetry."""
    parity = torch.cat([torch.full((2 * l + 1,), (-1.0) ** l, dtype=torch.float64) for l in range(LMAX + 1)])

    def summed(pos, edge_index, centre, vectors, Y=None):  # the package's stages on the checker's inputs
        Y = spherical_harmonics(LMAX, vectors) if Y is None else Y
        phi = radial_features(vectors.norm(dim=-1, keepdim=True))[:, :, None] * Y[:, None, :]
        return scatter_sum(phi, centre, pos.shape[0])

    def step_value(dtype, one_way=False):
        def step():
            graph = molecule(dtype)
            pos, edge_index = graph["positions"], graph["edge_index"]
            if one_way:
                edge_index = _one_way(edge_index)
            out = fn(pos, edge_index, radial_features, LMAX)
            expect_shape(out, (pos.shape[0], K, (LMAX + 1) ** 2), "A", AXES)
            i, j = edge_index
            ref = summed(pos, edge_index, i, pos[j] - pos[i])
            if one_way and out.dtype == dtype:
                counts = torch.bincount(i, minlength=pos.shape[0]).clamp_min(1).to(ref.dtype)
                first_match(out, [
                    (ref * parity, "convention", "the odd-l blocks have the wrong sign: the edge vector points from "
                     "the centre i = edge_index[0] to the neighbour j = edge_index[1], r_ij = pos[j] - pos[i]"),
                    (ref / counts[:, None, None], "normalisation", "this is the mean over neighbours; A is their sum"),
                    (summed(pos, edge_index, j, pos[j] - pos[i]), "convention", "the sum runs over the edges whose "
                     "centre is atom i, i.e. index_add over edge_index[0] (row 1 holds the neighbours)"),
                    (summed(pos, edge_index, j, pos[i] - pos[j]), "convention", "the sum runs over the edges whose "
                     "centre is atom i, i.e. index_add over edge_index[0] (row 1 holds the neighbours)"),
                ])
                if not torch.allclose(out, ref, rtol=1e-8, atol=1e-10):
                    symmetric = lambda p, e: fn(p, e, radial_features, LMAX)  # noqa: E731
                    expect_equivariant(symmetric, (pos, edge_index), ("cartesian_points", None), IRREPS,
                                       tests=("rotation", "reflection", "translation"))
                    expect_blocks(out, ref, BLOCKS, "A")
            return expect_close(out, ref, f"A ({dtype}{', one-way edges' if one_way else ''})", axes=AXES)
        return step

    def step_symmetries():
        graph = molecule(torch.float64)
        f = lambda p, e: fn(p, e, radial_features, LMAX)  # noqa: E731
        return expect_equivariant(f, (graph["positions"], graph["edge_index"]), ("cartesian_points", None),
                                  IRREPS, atoms_in=("atoms", "atom_index"), atoms_out="atoms")

    steps = [("values with one-way edges (i < j only)", step_value(torch.float64, one_way=True))]
    steps += [(f"values in {str(d)[6:]}", step_value(d)) for d in DTYPES]
    steps.append(("rotation, reflection, translation, permutation of atoms", step_symmetries))
    return run_checks(TITLE, steps, verbose)
