"""Teacher source of lab 12: the solutions, their notes and the wrong answers (negative controls)."""

import torch

NOTES = r"""**Line ↔ equation**: `n` is $N_b$ per configuration; the first mean is over the $B$ configurations of the
squared per-atom energy errors, the second over the $3N$ force components. With Adam the overall scale of the
loss hardly matters, the *ratio* $\lambda_F/\lambda_E$ does: the force-heavy run spends its few steps on the
forces (its force error is several times smaller) and leaves the energy error larger, the energy-heavy run does
the opposite. For MD the forces are what is integrated, hence MACE's $\lambda_F = 1000 \lambda_E$ (the energy can
be improved later, e.g. by the second, energy-heavier stage of the MACE recipe)."""


def weighted_loss(pred: dict, batch: dict, lambda_E: float, lambda_F: float) -> torch.Tensor:
    """λ_E · mean_b ((Ê_b - E_b) / N_b)² + λ_F · mean_iα (F̂_iα - F_iα)² (a scalar tensor)."""
    # BEGIN SOLUTION
    n_atoms = (batch["ptr"][1:] - batch["ptr"][:-1]).to(pred["energy"].dtype)  # [B]
    energy = (((pred["energy"] - batch["energy"]) / n_atoms) ** 2).mean()
    forces = ((pred["forces"] - batch["forces"]) ** 2).mean()  # over the 3N components
    return lambda_E * energy + lambda_F * forces
    # END SOLUTION


def answers() -> dict:
    """Your answers: each "energy-heavy" or "force-heavy"."""
    # BEGIN SOLUTION
    return {"smaller force error": "force-heavy", "smaller energy error": "energy-heavy",
            "for molecular dynamics": "force-heavy"}
    # END SOLUTION


def _n(batch, pred):
    return (batch["ptr"][1:] - batch["ptr"][:-1]).to(pred["energy"].dtype)


def wrong_total_energy(pred, batch, lambda_E, lambda_F):
    """Energy error not divided by the number of atoms."""
    return lambda_E * ((pred["energy"] - batch["energy"]) ** 2).mean() + lambda_F * (
        (pred["forces"] - batch["forces"]) ** 2).mean()


def wrong_forces_per_atom(pred, batch, lambda_E, lambda_F):
    """|ΔF|² averaged over atoms (3× the mean over components)."""
    return lambda_E * (((pred["energy"] - batch["energy"]) / _n(batch, pred)) ** 2).mean() + lambda_F * (
        (pred["forces"] - batch["forces"]) ** 2).sum(-1).mean()


def wrong_swapped(pred, batch, lambda_E, lambda_F):
    """λ_E and λ_F exchanged."""
    return weighted_loss(pred, batch, lambda_F, lambda_E)


def wrong_detached(pred, batch, lambda_E, lambda_F):
    """Returns a Python float: nothing to backpropagate."""
    return torch.tensor(weighted_loss(pred, batch, lambda_E, lambda_F).detach().item())


def wrong_rmse(pred, batch, lambda_E, lambda_F):
    """Root mean squared errors."""
    return lambda_E * (((pred["energy"] - batch["energy"]) / _n(batch, pred)) ** 2).mean().sqrt() + lambda_F * (
        (pred["forces"] - batch["forces"]) ** 2).mean().sqrt()


def wrong_answers_energy_for_md():
    """Right measurements, but an energy-heavy fit for MD."""
    return {"smaller force error": "force-heavy", "smaller energy error": "energy-heavy",
            "for molecular dynamics": "energy-heavy"}


def wrong_answers_reversed():
    """Believes each weight lowers the other error."""
    return {"smaller force error": "energy-heavy", "smaller energy error": "force-heavy",
            "for molecular dynamics": "force-heavy"}


WRONG_ANSWERS = {
    "energy not per atom": ((wrong_total_energy, answers), "normalisation", "not divided by the number of atoms"),
    "forces per atom": ((wrong_forces_per_atom, answers), "normalisation", "3× too large"),
    "weights swapped": ((wrong_swapped, answers), "convention", "swapped"),
    "detached": ((wrong_detached, answers), "value", "detached"),
    "rmse": ((wrong_rmse, answers), "convention", "no square root"),
    "energy-heavy for MD": ((weighted_loss, wrong_answers_energy_for_md), "answer", "MD integrates the forces"),
    "reversed": ((weighted_loss, wrong_answers_reversed), "answer", "the errors just measured say otherwise"),
}
