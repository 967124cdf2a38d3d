r"""# Exercise 2 — Real spherical harmonics $l = 1, 2$ in e3nn's convention

**What you will learn**: the explicit polynomials behind `spherical_harmonics`, the "component"
normalisation $\sum_m Y_{lm}^2 = 2l + 1$, and why the convention (order of $m$, polar axis) matters.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697 v2), section 3 (the angular part
$Y_l^m(\hat{\mathbf r}_{ij})$ of the one-particle basis, inside the atomic basis).

## The task

Write `sh_l1_l2(vectors)` returning, for vectors `[n, 3]`, the 8 real spherical harmonics of
$\hat{\mathbf r} = \mathbf r / |\mathbf r| = (x, y, z)$ with $l = 1$ then $l = 2$, `[n, 8]`:

$$ Y_1 = \sqrt{3}\,(x,\ y,\ z), $$

$$ Y_2 = \left(\sqrt{15}\, xz,\ \ \sqrt{15}\, xy,\ \ \sqrt{5}\,\big(y^2 - \tfrac{x^2 + z^2}{2}\big),\ \ \sqrt{15}\, yz,\ \
\tfrac{\sqrt{15}}{2}\,(z^2 - x^2)\right). $$

In this basis (e3nn's, used by mace-torch) $y$ is the polar axis: the $m = 0$ function of $l = 2$ is
the one symmetric about $y$. The textbook functions (polar axis $z$, order $y, z, x$ for $l = 1$) span the
same spaces but are different functions, so weights would not transfer between the two conventions.

The checker compares with `minimace.so3.spherical_harmonics(2, vectors)[:, 1:]` (derived with sympy) and
runs `assert_equivariant` with output irreps `1o + 2e`.
"""

from __future__ import annotations

import torch

from ..so3 import spherical_harmonics
from ._check import (DTYPES, expect_blocks, expect_close, expect_equivariant, expect_shape, first_match, make_hint,
                     run_checks)

TITLE = "Exercise 2 (spherical harmonics l = 1, 2)"
STUDENT_FUNCTIONS = ("sh_l1_l2",)
META = {"kind": "exercise", "difficulty": "introductory", "minutes": 25, "prerequisites": ("00",)}
NOTEBOOK_IMPORTS = ["import math", "import torch"]
HINTS = (
    "The harmonics depend only on the direction r̂ = r / |r|; each block l is a homogeneous polynomial of degree l "
    "in (x, y, z), scaled so that Σ_m Y_lm² = 2l + 1.",
    "r_hat = vectors / vectors.norm(dim=-1, keepdim=True); x, y, z = r_hat.unbind(-1); the order inside each "
    "block is the one printed in the formula (m = -l..l), not the textbook order.",
    "torch.cat([math.sqrt(3) * r_hat, torch.stack([math.sqrt(15) * x * z, math.sqrt(15) * x * y, "
    "math.sqrt(5) * (y**2 - (x**2 + z**2) / 2), math.sqrt(15) * y * z, math.sqrt(15) / 2 * (z**2 - x**2)], -1)], -1)",
)
hint = make_hint(HINTS)
BLOCKS = (("l=1", slice(0, 3)), ("l=2", slice(3, 8)))


def _vectors(dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(2)
    v = torch.randn(50, 3, dtype=torch.float64, generator=gen)
    return (v * (0.5 + 2 * torch.rand(50, 1, dtype=torch.float64, generator=gen))).to(dtype)  # lengths != 1


def check(fn, verbose: bool = True):
    """Check ``fn(vectors) -> [n, 8]`` against the package's spherical harmonics and for equivariance."""

    def step_value(dtype):
        def step():
            v = _vectors(dtype)
            out = fn(v)
            expect_shape(out, (v.shape[0], 8), "the harmonics", ("vector", "lm"))
            ref = spherical_harmonics(2, v)[..., 1:]  # the package's l = 1, 2 harmonics (derived with sympy)
            if dtype == torch.float64 and out.dtype == dtype:
                first_match(out, [(spherical_harmonics(2, v, normalize=False)[..., 1:], "value",
                                   "evaluate the harmonics at the unit vector r/|r|, not at r")])
                expect_blocks(out, ref, BLOCKS, "the harmonics", notes={
                    "normalisation": ": use the component normalisation Σ_m Y_lm² = 2l+1"})
            return expect_close(out, ref, f"the harmonics ({dtype})", axes=("vector", "lm"))
        return step

    def step_equivariant():
        return expect_equivariant(fn, (_vectors(torch.float64),), ("cartesian_vectors",), "1o+2e",
                                  tests=("rotation", "reflection"))

    steps = [(f"values in {str(d)[6:]}", step_value(d)) for d in DTYPES]
    steps.append(("equivariance (rotations and reflections, irreps 1o+2e)", step_equivariant))
    return run_checks(TITLE, steps, verbose)
