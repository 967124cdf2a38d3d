r"""# Exercise 3 — Coupling two vectors into $0 \oplus 1 \oplus 2$ with Clebsch–Gordan coefficients

**What you will learn**: how the product of two $l = 1$ features decomposes into irreducible parts
$l = 0$ (a dot product), $l = 1$ (a cross product) and $l = 2$ (a symmetric traceless matrix), and how the real
Clebsch–Gordan tensor does it in one `einsum`. This is the coupling inside the atomic basis (Eq. 8) and
the generalized CG coefficients of the B-functions (Eq. 10).

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
from ._check import (DTYPES, expect_blocks, expect_close, expect_equivariant, expect_shape, first_match, make_hint,
                     run_checks)

TITLE = "Exercise 3 (Clebsch–Gordan coupling 1 ⊗ 1 = 0 ⊕ 1 ⊕ 2)"
STUDENT_FUNCTIONS = ("couple_vectors",)
META = {"kind": "exercise", "difficulty": "intermediate", "minutes": 25, "prerequisites": ("00", "03")}
NOTEBOOK_IMPORTS = ["import torch", "", "from minimace.so3 import clebsch_gordan"]
HINTS = (
    "Each output block L is a bilinear function of u and v: a fixed tensor C^L with three indices (a of u, b of v, "
    "M of the output) contracted with u and v. Three blocks, concatenated in the order of the irreps.",
    "clebsch_gordan(1, 1, L, dtype=u.dtype) has shape [3, 3, 2L+1]; contract its first index with u and its second "
    "with v (torch.einsum), keep the batch index n.",
    "torch.cat([torch.einsum('abc,na,nb->nc', clebsch_gordan(1, 1, L, dtype=u.dtype), u, v) for L in (0, 1, 2)], -1)",
)
hint = make_hint(HINTS)
BLOCKS = (("L=0", slice(0, 1)), ("L=1", slice(1, 4)), ("L=2", slice(4, 9)))


def _inputs(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(3)
    u, v = torch.randn(2, 20, 3, dtype=torch.float64, generator=gen)
    return u.to(dtype), v.to(dtype)


def check(fn, verbose: bool = True):
    """Check ``fn(u, v) -> [n, 9]`` against the package's Clebsch–Gordan coupling, identities and symmetry."""

    def coupled(a, b):  # the package's coefficients, on the checker's inputs
        return [torch.einsum("abc,na,nb->nc", clebsch_gordan(1, 1, L, dtype=a.dtype), a, b) for L in range(3)]

    def step_value(dtype):
        def step():
            u, v = _inputs(dtype)
            out = fn(u, v)
            expect_shape(out, (u.shape[0], 9), "the coupled features", ("n", "LM"))
            blocks = coupled(u, v)
            ref = torch.cat(blocks, -1)
            if dtype == torch.float64 and out.dtype == dtype:
                first_match(out, [
                    (torch.cat([b / math.sqrt(2 * L + 1) for L, b in enumerate(blocks)], -1), "normalisation",
                     "block L is 1/sqrt(2L+1) too small: that is wigner_3j, use clebsch_gordan "
                     "(= sqrt(2L+1) · wigner_3j)"),
                    (torch.cat(blocks[::-1], -1), "convention",
                     "the blocks are in the order L = 2, 1, 0; the irreps are 0e+1e+2e"),
                    (torch.cat(coupled(v, u), -1), "convention",
                     "u and v are swapped: C_{abM} multiplies u_a v_b (swapping them flips the sign of the "
                     "antisymmetric L = 1 block)"),
                ])
                expect_blocks(out, ref, BLOCKS, "the coupled features")
            return expect_close(out, ref, f"the coupled features ({dtype})", axes=("n", "LM"))
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
