"""Teacher source of lab 10: the solution, its notes and the wrong answers (negative controls)."""

import torch

from minimace.ace import LinearACE
from minimace.datasets import bundled_e0s
from minimace.exercises import ex10_linear_ace as exercise

NOTES = r"""**Choices**: `e0s` puts the energy zero at the isolated atoms, so the B-functions fit only the binding
energy; `n_max=4, l_max=2, max_degree=(4, 6)` keeps the two-body (ν = 1) and three-body (ν = 2) B-functions of
total degree ≤ 4 and ≤ 6 (a few hundred coefficients for three elements); `forces_weight=1.0` with
`energy_weight=30.0` weighs one energy row like ~30 force components — an ethanol has 27, so both labels matter.
The ridge λ is chosen by the validation error (`model.fit_info`). A third order (`max_degree=(4, 6, 6)`) lowers the
force error further, at about three times the coefficients and fit time."""


def fit_ace(train: list, valid: list) -> LinearACE:
    """A fitted linear ACE for H, C, O from labelled graphs (cutoff exercise.R_MAX)."""
    # BEGIN SOLUTION
    model = LinearACE([1, 6, 8], e0s=bundled_e0s(), r_max=exercise.R_MAX, n_max=4, l_max=2, max_degree=(4, 6))
    return model.fit(train, valid, energy_weight=30.0, forces_weight=1.0)
    # END SOLUTION


def wrong_not_fitted(train, valid):
    """Builds the model but forgets to fit it."""
    return LinearACE([1, 6, 8], e0s=bundled_e0s(), r_max=exercise.R_MAX, n_max=4, l_max=2, max_degree=(4, 6))


def wrong_two_body(train, valid):
    """Only ν = 1 B-functions (a pair potential): fast but far from the target."""
    return LinearACE([1, 6, 8], e0s=bundled_e0s(), r_max=exercise.R_MAX, n_max=4, l_max=2, max_degree=(4,)).fit(train, valid)


def wrong_huge_basis(train, valid):
    """A basis far beyond the budget of coefficients."""
    model = LinearACE([1, 6, 8], e0s=bundled_e0s(), r_max=exercise.R_MAX, n_max=6, l_max=3, max_degree=(6, 9, 8))
    model.coefficients = torch.zeros(3, model.basis.num_basis)  # stands for a fit: only the size is checked
    return model


WRONG_ANSWERS = {
    "not fitted": (wrong_not_fitted, "value", "call .fit"),
    "two-body only": (wrong_two_body, "value", "add a second entry to max_degree"),
    "too many coefficients": (wrong_huge_basis, "value", "choose a smaller basis"),
}
