r"""# Exercise 2 — Real spherical harmonics $l = 1, 2$ in e3nn's convention

**What you will learn**: the explicit polynomials behind `spherical_harmonics`, the "component"
normalisation $\sum_m Y_{lm}^2 = 2l + 1$, and why the convention (order of $m$, polar axis) matters.

**Prerequisites**: notebook 00 (rotations and spherical harmonics).

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697), Eq. (7) (the angular part $Y_l^m(\hat{\mathbf r}_{ij})$
of the one-particle basis).

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

import math

import torch

from ..so3 import spherical_harmonics
from ._check import DTYPES, ExerciseFailure, expect_close, expect_equivariant, expect_shape, run_checks

TITLE = "Exercise 2 (spherical harmonics l = 1, 2)"
STUDENT_FUNCTION = "sh_l1_l2"
NOTEBOOK_IMPORTS = ["import math", "import torch"]
HINT = "normalise the vectors first, split x, y, z = r_hat.unbind(-1), then stack the 3 + 5 polynomials"
NOTES = r"""**Line ↔ equation**: `r_hat` is $\hat{\mathbf r}$; `l1` is $Y_1 = \sqrt3 (x, y, z)$; `l2` stacks the five
$l = 2$ polynomials in the order $m = -2, \dots, 2$ of e3nn's basis. Check by hand: $\sum_m Y_{1m}^2 = 3$ and
$\sum_m Y_{2m}^2 = 5$ on the unit sphere (component normalisation)."""


def sh_l1_l2(vectors: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics l = 1, 2 of r̂ in e3nn's basis: ``vectors`` [n, 3] -> [n, 3 + 5]."""
    # BEGIN SOLUTION
    r_hat = vectors / vectors.norm(dim=-1, keepdim=True)  # [n, 3]
    x, y, z = r_hat.unbind(-1)  # [n] each
    l1 = math.sqrt(3) * r_hat  # [n, 3]
    l2 = torch.stack([
        math.sqrt(15) * x * z,
        math.sqrt(15) * x * y,
        math.sqrt(5) * (y**2 - (x**2 + z**2) / 2),
        math.sqrt(15) * y * z,
        math.sqrt(15) / 2 * (z**2 - x**2),
    ], dim=-1)  # [n, 5]
    return torch.cat([l1, l2], dim=-1)  # [n, 8]
    # END SOLUTION


def reference(vectors: torch.Tensor) -> torch.Tensor:
    """The package's l = 1, 2 harmonics ``[n, 8]``."""
    return spherical_harmonics(2, vectors)[..., 1:]


def _vectors(dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(2)
    v = torch.randn(50, 3, dtype=torch.float64, generator=gen)
    return (v * (0.5 + 2 * torch.rand(50, 1, dtype=torch.float64, generator=gen))).to(dtype)  # lengths != 1


def _diagnose(out: torch.Tensor, v: torch.Tensor) -> None:
    """Name the usual mistakes (float64 only)."""
    ref = reference(v)
    close = lambda a, b: torch.allclose(a, b, rtol=1e-8, atol=1e-10)  # noqa: E731
    if close(out, spherical_harmonics(2, v, normalize=False)[..., 1:]):
        raise ExerciseFailure("value", "evaluate the harmonics at the unit vector r/|r|, not at r")
    for l, sl in ((1, slice(0, 3)), (2, slice(3, 8))):
        a, b = out[:, sl], ref[:, sl]
        ratio = (a * b).sum() / (b * b).sum()
        if close(a, ratio * b) and not close(ratio, torch.ones_like(ratio)):
            raise ExerciseFailure("normalisation", f"your l={l} block is {ratio.item():.6g} × e3nn's: use the "
                                  f"component normalisation sum_m Y_lm² = 2l+1 = {2 * l + 1}")
        M = torch.linalg.lstsq(b, a).solution  # a ≈ b @ M: same space, another basis?
        if close(a, b @ M) and not close(M, torch.eye(2 * l + 1, dtype=M.dtype)):
            raise ExerciseFailure("convention", f"your l={l} functions span the right space but in another basis "
                                  "(order of m, polar axis or signs): e3nn's basis has y as the polar axis and "
                                  "l=1 = sqrt(3) (x, y, z)")


def check(fn, verbose: bool = True):
    """Check ``fn(vectors) -> [n, 8]`` against the package's spherical harmonics and for equivariance."""

    def step_value(dtype):
        def step():
            v = _vectors(dtype)
            out = fn(v)
            expect_shape(out, (v.shape[0], 8), "the harmonics")
            if dtype == torch.float64 and out.dtype == dtype:
                _diagnose(out, v)
            return expect_close(out, reference(v), f"the harmonics ({dtype})")
        return step

    def step_equivariant():
        return expect_equivariant(fn, (_vectors(torch.float64),), ("cartesian_vectors",), "1o+2e",
                                  tests=("rotation", "reflection"))

    steps = [(f"values in {str(d)[6:]}", step_value(d)) for d in DTYPES]
    steps.append(("equivariance (rotations and reflections, irreps 1o+2e)", step_equivariant))
    return run_checks(TITLE, steps, verbose)


# plausible wrong answers, used by the tests as negative controls
def wrong_unnormalised_vectors(vectors):
    """Evaluates the polynomials at r instead of r̂."""
    return spherical_harmonics(2, vectors, normalize=False)[..., 1:]


def wrong_unit_norm(vectors):
    """Orthonormal ("norm") normalisation: each block divided by sqrt(2l+1)."""
    Y = reference(vectors)
    return torch.cat([Y[..., :3] / math.sqrt(3), Y[..., 3:] / math.sqrt(5)], dim=-1)


def wrong_textbook_axes(vectors):
    """Textbook convention: z is the polar axis, l = 1 in the order (y, z, x)."""
    return reference(vectors[..., [1, 2, 0]])


def wrong_l2_sign(vectors):
    """A sign slip in one l = 2 component."""
    Y = reference(vectors)
    return torch.cat([Y[..., :6], -Y[..., 6:7], Y[..., 7:]], dim=-1)


WRONG_ANSWERS = {"r instead of r_hat": wrong_unnormalised_vectors, "unit norm": wrong_unit_norm,
                 "textbook axes": wrong_textbook_axes, "sign slip": wrong_l2_sign}
