r"""# Exercise 3 — Coupling two vectors into $0 \oplus 1 \oplus 2$ with Clebsch–Gordan coefficients

**What you will learn**: how the product of two $l = 1$ features decomposes into irreducible parts
$l = 0$ (a dot product), $l = 1$ (a cross product) and $l = 2$ (a symmetric traceless matrix), and how the real
Clebsch–Gordan tensor does it in one `einsum`. This is the coupling inside the atomic basis (Eq. 8) and
the generalized CG coefficients of the B-functions (Eq. 10).

**Prerequisites**: notebooks 00 and 03.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697), Eq. (8) and (10).

## The task

Write `couple_vectors(u, v)`: for two batches of $l = 1$ features `u`, `v` `[n, 3]` (e3nn's basis,
irreps `1o`), return `[n, 1 + 3 + 5]`, the blocks $L = 0, 1, 2$ concatenated,

$$ (u \otimes v)_{LM} = \sum_{a, b} C^{LM}_{1a,\,1b}\; u_a\, v_b , $$

with `clebsch_gordan(1, 1, L)` from `minimace.so3` (shape `[3, 3, 2L+1]`, normalised so that
$\sum_{ab} C_{abM} C_{abM'} = \delta_{MM'}$). The output has irreps `0e + 1e + 2e`: the product of two odd
vectors is even.

The checker compares with the package's coefficients, with independent identities
($L = 0$ is $u\cdot v/\sqrt3$, $L = 1$ is $u\times v/\sqrt2$, the norm is $|u|\,|v|$), and runs
`assert_equivariant`.
"""

from __future__ import annotations

import math

import torch

from ..so3 import clebsch_gordan
from ._check import DTYPES, ExerciseFailure, expect_close, expect_equivariant, expect_shape, run_checks

TITLE = "Exercise 3 (Clebsch–Gordan coupling 1 ⊗ 1 = 0 ⊕ 1 ⊕ 2)"
STUDENT_FUNCTION = "couple_vectors"
NOTEBOOK_IMPORTS = ["import torch", "", "from minimace.so3 import clebsch_gordan"]
HINT = ("for L in 0, 1, 2: C = clebsch_gordan(1, 1, L, dtype=u.dtype); "
        "torch.einsum('abc,na,nb->nc', C, u, v); then torch.cat")
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


def reference(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The coupling with the package's coefficients ``[n, 9]``."""
    blocks = [torch.einsum("abc,na,nb->nc", clebsch_gordan(1, 1, L, dtype=u.dtype), u, v) for L in range(3)]
    return torch.cat(blocks, -1)


def _inputs(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(3)
    u, v = torch.randn(2, 20, 3, dtype=torch.float64, generator=gen)
    return u.to(dtype), v.to(dtype)


def _diagnose(out: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> None:
    ref = reference(u, v)
    close = lambda a, b: torch.allclose(a, b, rtol=1e-8, atol=1e-10)  # noqa: E731
    blocks = [slice(0, 1), slice(1, 4), slice(4, 9)]
    if close(out, torch.cat([ref[:, blocks[L]] / math.sqrt(2 * L + 1) for L in range(3)], -1)):
        raise ExerciseFailure("normalisation", "block L is 1/sqrt(2L+1) too small: that is wigner_3j, "
                              "use clebsch_gordan (= sqrt(2L+1) · wigner_3j)")
    if close(out, torch.cat([ref[:, 4:9], ref[:, 1:4], ref[:, 0:1]], -1)):
        raise ExerciseFailure("convention", "the blocks are in the order L = 2, 1, 0; the irreps are 0e+1e+2e")
    if close(out, reference(v, u)):
        raise ExerciseFailure("convention", "u and v are swapped: C_{abM} multiplies u_a v_b "
                              "(swapping them flips the sign of the antisymmetric L = 1 part)")


def check(fn, verbose: bool = True):
    """Check ``fn(u, v) -> [n, 9]`` against the package's Clebsch–Gordan coupling, identities and symmetry."""

    def step_value(dtype):
        def step():
            u, v = _inputs(dtype)
            out = fn(u, v)
            expect_shape(out, (u.shape[0], 9), "the coupled features")
            if dtype == torch.float64 and out.dtype == dtype:
                _diagnose(out, u, v)
            return expect_close(out, reference(u, v), f"the coupled features ({dtype})")
        return step

    def step_identities():
        # independent of the stored coefficients: dot product, cross product, norm
        u, v = _inputs(torch.float64)
        out = fn(u, v)
        expect_close(out[:, :1], (u * v).sum(-1, keepdim=True) / math.sqrt(3), "the L = 0 block vs u·v/√3")
        expect_close(out[:, 1:4], torch.linalg.cross(u, v) / math.sqrt(2), "the L = 1 block vs u×v/√2")
        expect_close(out.norm(dim=-1), u.norm(dim=-1) * v.norm(dim=-1), "|u ⊗ v| vs |u| |v|", kind="normalisation")
        return "L=0 is u·v/√3, L=1 is u×v/√2, |u⊗v| = |u||v|"

    def step_equivariant():
        return expect_equivariant(fn, _inputs(torch.float64), ("1o", "1o"), "0e+1e+2e",
                                  tests=("rotation", "reflection"))

    steps = [(f"values in {str(d)[6:]}", step_value(d)) for d in DTYPES]
    steps.append(("identities (dot, cross, norm)", step_identities))
    steps.append(("equivariance (1o ⊗ 1o -> 0e+1e+2e)", step_equivariant))
    return run_checks(TITLE, steps, verbose)


# plausible wrong answers, used by the tests as negative controls
def wrong_wigner_3j(u, v):
    """Uses the Wigner-3j symbols (Frobenius norm 1) instead of the Clebsch–Gordan coefficients."""
    out = reference(u, v)
    return torch.cat([out[:, :1], out[:, 1:4] / math.sqrt(3), out[:, 4:] / math.sqrt(5)], -1)


def wrong_swapped(u, v):
    """Contracts C_{abM} with v_a u_b."""
    return reference(v, u)


def wrong_outer_product(u, v):
    """The Cartesian outer product u v^T, flattened: right size, wrong basis."""
    return (u[:, :, None] * v[:, None, :]).reshape(-1, 9)


WRONG_ANSWERS = {"wigner_3j": wrong_wigner_3j, "u and v swapped": wrong_swapped, "outer product": wrong_outer_product}
