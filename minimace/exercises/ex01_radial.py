r"""# Exercise 1 — The radial basis: Bessel functions × polynomial envelope

**What you will learn**: how MACE turns a distance $r_{ij}$ into smooth radial features that vanish, with
their first two derivatives, at the cutoff $r_c$.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697 v2), Appendix A.5 (the radial basis, inside the one-particle
basis of the atomic basis); the envelope is from Klicpera et al., *DimeNet* (ICLR 2020), Eq. (8).

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
from ._check import DTYPES, ExerciseFailure, expect_close, expect_shape, first_match, make_hint, run_checks

TITLE = "Exercise 1 (radial basis)"
STUDENT_FUNCTIONS = ("bessel_envelope",)
META = {"kind": "exercise", "difficulty": "introductory", "minutes": 20, "prerequisites": ("01",)}
NOTEBOOK_IMPORTS = ["import math", "import torch"]
HINTS = (
    "Two factors: the Bessel functions j_n(r) (one column per n) and the envelope f_p(r) (one column, "
    "broadcast over n); beyond r_c everything is zero.",
    "n = torch.arange(1, num_bessel + 1) is a row, r is a column [n_edges, 1], so n * r is [n_edges, num_bessel]; "
    "the envelope is a polynomial in x = r / r_max (not in r); mask with (r < r_max).",
    "bessel = math.sqrt(2 / r_max) * torch.sin(n * math.pi * r / r_max) / r; envelope = 1 - (p+1)(p+2)/2 x^p "
    "+ p(p+2) x^(p+1) - p(p+1)/2 x^(p+2); return bessel * envelope * (r < r_max)",
)
hint = make_hint(HINTS)

R_MAX, NUM_BESSEL, P = 5.0, 8, 5
AXES = ("edge", "n")


def _distances(dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    inside = 0.5 + (R_MAX - 0.5) * torch.rand(40, 1, dtype=torch.float64, generator=gen)
    outside = R_MAX + torch.rand(5, 1, dtype=torch.float64, generator=gen)
    return torch.cat([inside, outside]).to(dtype)  # [45, 1]: 45 edges != 8 functions


def check(fn, verbose: bool = True):
    """Check ``fn(r, r_max, num_bessel, p)`` against the package's Bessel basis and envelope."""
    bessel, envelope = BesselBasis(R_MAX, NUM_BESSEL), PolynomialCutoff(R_MAX, P)

    def step_value(dtype):
        def step():
            r = _distances(dtype)
            out = fn(r, R_MAX, NUM_BESSEL, P)
            expect_shape(out, (r.shape[0], NUM_BESSEL), "the features", AXES)
            ref = (bessel(r) * envelope(r)).to(dtype)
            if dtype == torch.float64 and out.dtype == dtype:
                inside = r < R_MAX
                first_match(out, [
                    (bessel(r / R_MAX) * envelope(r / R_MAX), "convention",
                     "the basis is evaluated at x = r / r_c instead of r: j_n and f_p take the distance r "
                     "(the division by r_c is inside sin(nπr/r_c) and x = r/r_c)"),
                    (bessel(r**2) * envelope(r**2), "convention",
                     "the basis is evaluated at r² instead of r (squared distances): use |r_ij|, the norm"),
                    (ref / math.sqrt(2.0 / R_MAX), "normalisation",
                     "off by the constant factor sqrt(r_max / 2): the prefactor sqrt(2 / r_max) is missing"),
                    (bessel(r) * inside, "value", "these are the Bessel functions without the envelope f_p(r)"),
                    (torch.cat([torch.zeros_like(r), ref[:, :-1]], 1), "convention",
                     "n runs from 1 to num_bessel, not from 0 (sin(0) = 0 is no feature): column n is shifted"),
                ])
                outside = ~inside[:, 0]
                if out[outside].abs().max() > 0 and torch.allclose(out[~outside], ref[~outside]):
                    raise ExerciseFailure("value", "the features must be exactly zero beyond the cutoff "
                                          "(multiply by r < r_max)")
            return expect_close(out, ref, f"the features ({dtype})", axes=AXES)
        return step

    def step_smooth():
        # independent of the package: central differences of the features at the cutoff
        h = 1e-4
        r = torch.tensor([[R_MAX - 2 * h], [R_MAX - h], [R_MAX], [R_MAX + h], [R_MAX + 2 * h]], dtype=torch.float64)
        f = fn(r, R_MAX, NUM_BESSEL, P)
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
