r"""# Exercise 1 — The radial basis: Bessel functions × polynomial envelope

**What you will learn**: how MACE turns a distance $r_{ij}$ into smooth radial features that vanish, with
their first two derivatives, at the cutoff $r_c$.

**Prerequisites**: notebook 01 (one-particle basis).

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697), Eq. (7) and Appendix A.2; the envelope is Eq. (8) of
Klicpera et al., *DimeNet* (ICLR 2020).

## The task

Write `bessel_envelope(r, r_max, num_bessel, p)` returning, for distances `r` of shape `[n_edges, 1]`,
the features `[n_edges, num_bessel]`

$$ j_n(r)\, f_p(r), \qquad j_n(r) = \sqrt{\frac{2}{r_c}}\, \frac{\sin(n\pi r / r_c)}{r}, \quad n = 1, \dots, n_\text{bessel}, $$

$$ f_p(r) = 1 - \frac{(p+1)(p+2)}{2} x^p + p(p+2)\, x^{p+1} - \frac{p(p+1)}{2} x^{p+2}, \qquad x = r / r_c, $$

with $f_p(r) = 0$ for $r \ge r_c$. Keep the dtype of `r` (float32 or float64).

The checker compares your features with `minimace.radial.BesselBasis` × `PolynomialCutoff`, and checks
with finite differences that they go to zero smoothly at $r_c$.
"""

from __future__ import annotations

import math

import torch

from ..radial import BesselBasis, PolynomialCutoff
from ._check import DTYPES, ExerciseFailure, expect_close, expect_shape, max_error, run_checks, tolerance

TITLE = "Exercise 1 (radial basis)"
STUDENT_FUNCTION = "bessel_envelope"
NOTEBOOK_IMPORTS = ["import math", "import torch"]
HINT = ("n = 1..num_bessel as a row vector, x = r / r_max; "
        "multiply the Bessel functions by the envelope and by (r < r_max)")
NOTES = r"""**Line ↔ equation**: `n` holds $n = 1..n_\text{bessel}$ (a row, so that `n * r` broadcasts to
`[n_edges, num_bessel]`); `bessel` is $j_n(r)$ of Eq. (7); `envelope` is $f_p(x)$ with $x = r/r_c$, multiplied
by $[r < r_c]$ so that it is exactly zero beyond the cutoff."""


def bessel_envelope(r: torch.Tensor, r_max: float, num_bessel: int, p: int) -> torch.Tensor:
    """Radial features j_n(r) · f_p(r): ``r`` [n_edges, 1] -> [n_edges, num_bessel]."""
    # BEGIN SOLUTION
    n = torch.arange(1, num_bessel + 1, dtype=r.dtype, device=r.device)  # [num_bessel]
    bessel = math.sqrt(2.0 / r_max) * torch.sin(n * math.pi * r / r_max) / r  # [n_edges, num_bessel]
    x = r / r_max  # [n_edges, 1]
    envelope = (
        1.0
        - (p + 1) * (p + 2) / 2 * x**p
        + p * (p + 2) * x ** (p + 1)
        - p * (p + 1) / 2 * x ** (p + 2)
    )  # [n_edges, 1]
    return bessel * envelope * (r < r_max)  # [n_edges, num_bessel]
    # END SOLUTION


def reference(r: torch.Tensor, r_max: float, num_bessel: int, p: int) -> torch.Tensor:
    """The package's features: ``BesselBasis(r) * PolynomialCutoff(r)``."""
    return BesselBasis(r_max, num_bessel)(r) * PolynomialCutoff(r_max, p)(r)


def _distances(dtype: torch.dtype, r_max: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    inside = 0.5 + (r_max - 0.5) * torch.rand(40, 1, dtype=torch.float64, generator=gen)
    outside = r_max + torch.rand(5, 1, dtype=torch.float64, generator=gen)
    return torch.cat([inside, outside]).to(dtype)  # [45, 1]


def _diagnose(out: torch.Tensor, r: torch.Tensor, r_max: float, num_bessel: int, p: int) -> None:
    """Name the usual mistakes before reporting a plain value difference."""
    ref = reference(r, r_max, num_bessel, p)
    inside = (r[:, 0] < r_max)
    if (out[~inside].abs().max() > 0) and torch.allclose(out[inside], ref[inside], rtol=1e-6, atol=1e-8):
        raise ExerciseFailure("value", "the features must be exactly zero beyond the cutoff (multiply by r < r_max)")
    ratio = out[inside] / ref[inside]
    if torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-6) and abs(ratio.flatten()[0] - 1) > 1e-6:
        raise ExerciseFailure("normalisation", f"off by a constant factor {ratio.flatten()[0].item():.6g} "
                              "(the prefactor is sqrt(2 / r_max))")
    bare = BesselBasis(r_max, num_bessel)(r)
    if torch.allclose(out[inside], bare[inside], rtol=1e-6, atol=1e-8):
        raise ExerciseFailure("value", "these are the Bessel functions without the envelope f_p(r)")
    if torch.allclose(out[inside, 1:], ref[inside, :-1], rtol=1e-6, atol=1e-8):
        raise ExerciseFailure("convention", "n runs from 1 to num_bessel, not from 0 (sin(0) = 0 is no feature)")


def check(fn, verbose: bool = True):
    """Check ``fn(r, r_max, num_bessel, p)`` against the package's Bessel basis and envelope."""
    r_max, num_bessel, p = 5.0, 8, 5

    def step_value(dtype):
        def step():
            r = _distances(dtype, r_max)
            out = fn(r, r_max, num_bessel, p)
            expect_shape(out, (r.shape[0], num_bessel), "the features")
            if dtype == torch.float64 and out.dtype == dtype:
                ref = reference(r, r_max, num_bessel, p)
                atol, rtol = tolerance(dtype)
                if max_error(out, ref) > atol + rtol * ref.abs().max().item():
                    _diagnose(out, r, r_max, num_bessel, p)
            return expect_close(out, reference(r, r_max, num_bessel, p), f"the features ({dtype})")
        return step

    def step_smooth():
        # independent of the package: central differences of the features at the cutoff
        h = 1e-4
        r = torch.tensor([[r_max - 2 * h], [r_max - h], [r_max], [r_max + h], [r_max + 2 * h]], dtype=torch.float64)
        f = fn(r, r_max, num_bessel, p)
        first = (f[3] - f[1]) / (2 * h)
        second = (f[3] - 2 * f[2] + f[1]) / h**2
        if f[2].abs().max() > 1e-12 or first.abs().max() > 1e-6 or second.abs().max() > 1e-3:
            raise ExerciseFailure("value", f"at r = r_max the features, their first and second derivatives should "
                                  f"vanish; got max |f| {f[2].abs().max():.1e}, |f'| {first.abs().max():.1e}, "
                                  f"|f''| {second.abs().max():.1e}")
        return "f, f', f'' vanish at r_max"

    steps = [(f"values in {str(d)[6:]}", step_value(d)) for d in DTYPES]
    steps.append(("smooth at the cutoff (finite differences)", step_smooth))
    return run_checks(TITLE, steps, verbose)


# plausible wrong answers, used by the tests as negative controls
def wrong_no_prefactor(r, r_max, num_bessel, p):
    """Forgets the normalisation sqrt(2 / r_max)."""
    return bessel_envelope(r, r_max, num_bessel, p) / math.sqrt(2.0 / r_max)


def wrong_no_envelope(r, r_max, num_bessel, p):
    """Bessel functions only (no envelope, hence not smooth at the cutoff)."""
    return BesselBasis(r_max, num_bessel)(r) * (r < r_max)


def wrong_n_from_zero(r, r_max, num_bessel, p):
    """``n = 0 .. num_bessel-1`` (the first function is identically zero)."""
    return torch.cat([torch.zeros_like(r), bessel_envelope(r, r_max, num_bessel, p)[:, :-1]], dim=1)


WRONG_ANSWERS = {"no prefactor": wrong_no_prefactor, "no envelope": wrong_no_envelope, "n from 0": wrong_n_from_zero}
