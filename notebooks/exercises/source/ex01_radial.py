"""Teacher source of exercise 1: the solution, its notes and the wrong answers (negative controls).

Not part of the installed package: ``scripts/render_exercises.py`` renders the student notebook (the body between
the sentinels replaced by a stub) and the solution notebook; tests/test_exercises.py runs the wrong answers.
"""

import math

import torch

from minimace.radial import BesselBasis, PolynomialCutoff

NOTES = r"""**Line ↔ equation**: `n` holds $n = 1..n_\text{bessel}$ (a row, so that `n * r` broadcasts to
`[n_edges, num_bessel]`); `bessel` is $j_n(r)$ (the radial basis of Appendix A.5); `envelope` is $f_p(x)$ with $x = r/r_c$, multiplied
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


# plausible wrong answers (negative controls): name -> (function, the kind the checker must report)
def wrong_no_prefactor(r, r_max, num_bessel, p):
    """Forgets the normalisation sqrt(2 / r_max)."""
    return bessel_envelope(r, r_max, num_bessel, p) / math.sqrt(2.0 / r_max)


def wrong_no_envelope(r, r_max, num_bessel, p):
    """Bessel functions only (no envelope, hence not smooth at the cutoff)."""
    return BesselBasis(r_max, num_bessel)(r) * (r < r_max)


def wrong_n_from_zero(r, r_max, num_bessel, p):
    """``n = 0 .. num_bessel-1`` (the first function is identically zero)."""
    return torch.cat([torch.zeros_like(r), bessel_envelope(r, r_max, num_bessel, p)[:, :-1]], dim=1)


def wrong_scaled_distance(r, r_max, num_bessel, p):
    """Evaluates the basis at x = r / r_c (the student divided by r_c once too often)."""
    return bessel_envelope(r / r_max, r_max, num_bessel, p)


def wrong_squared_distance(r, r_max, num_bessel, p):
    """Evaluates the basis at r² (squared distances, no square root)."""
    return bessel_envelope(r**2, r_max, num_bessel, p)


def wrong_no_mask(r, r_max, num_bessel, p):
    """Forgets (r < r_max): the polynomial envelope is not zero beyond the cutoff."""
    return bessel_envelope(r, r_max, num_bessel, p) + (r >= r_max) * BesselBasis(r_max, num_bessel)(r)


def wrong_transposed(r, r_max, num_bessel, p):
    """Returns [num_bessel, n_edges]."""
    return bessel_envelope(r, r_max, num_bessel, p).T


def wrong_float64(r, r_max, num_bessel, p):
    """Computes in float64 whatever the input."""
    return bessel_envelope(r.double(), r_max, num_bessel, p)


WRONG_ANSWERS = {
    "no prefactor": (wrong_no_prefactor, "normalisation", "sqrt(2 / r_max)"),
    "no envelope": (wrong_no_envelope, "value", "without the envelope"),
    "n from 0": (wrong_n_from_zero, "convention", "n runs from 1"),
    "r / r_c": (wrong_scaled_distance, "convention", "x = r / r_c instead of r"),
    "r squared": (wrong_squared_distance, "convention", "r² instead of r"),
    "no cutoff mask": (wrong_no_mask, "value", "zero beyond the cutoff"),
    "transposed": (wrong_transposed, "shape", "axis 0 holds n"),
    "float64 always": (wrong_float64, "value", "float32"),
}
