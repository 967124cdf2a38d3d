"""Teacher source of exercise 6: the solution, its notes and the wrong answers (negative controls)."""

from typing import Callable

import torch

NOTES = r"""**Line ↔ equation**: `detach().requires_grad_(True)` makes a fresh leaf $\mathbf r$ that autograd differentiates
with respect to (the caller's tensor is left as it was); `energy` is $E(\mathbf r)$; `torch.autograd.grad` returns
$\partial E / \partial \mathbf r$ `[N, 3]`; the minus sign makes it a force. (Inside a training loop, MACE passes
`create_graph=True` so that a loss on the forces can be differentiated again with respect to the weights.)"""


def forces(energy_fn: Callable[[torch.Tensor], torch.Tensor], positions: torch.Tensor) -> torch.Tensor:
    """F = -∂E/∂r: ``energy_fn`` maps positions [N, 3] to a scalar energy -> forces [N, 3]."""
    # BEGIN SOLUTION
    positions = positions.detach().requires_grad_(True)  # [N, 3], a fresh leaf
    energy = energy_fn(positions)  # scalar
    (gradient,) = torch.autograd.grad(energy, positions)  # ∂E/∂r: [N, 3]
    return -gradient
    # END SOLUTION


def wrong_sign(energy_fn, positions):
    """Returns +∂E/∂r."""
    return -forces(energy_fn, positions)


def wrong_per_atom_energy(energy_fn, positions):
    """Differentiates the energy per atom E / N."""
    return forces(lambda p: energy_fn(p) / p.shape[0], positions)


def _differences(energy_fn, positions, h, central):
    out = torch.zeros_like(positions)
    with torch.no_grad():
        e0 = energy_fn(positions)
        for idx in range(positions.numel()):
            step = torch.zeros_like(positions).view(-1)
            step[idx] = h
            step = step.view_as(positions)
            low = energy_fn(positions - step) if central else e0
            out.view(-1)[idx] = -(energy_fn(positions + step) - low) / (h * (2 if central else 1))
    return out


def wrong_one_sided_difference(energy_fn, positions):
    """A forward difference with a large step instead of the exact gradient."""
    return _differences(energy_fn, positions, 1e-2, central=False)


def wrong_central_difference(energy_fn, positions):
    """Accurate central differences (h = 1e-5): close in value, but not autograd."""
    return _differences(energy_fn, positions, 1e-5, central=True)


def wrong_mutates_input(energy_fn, positions):
    """Calls requires_grad_ on the caller's tensor (and leaves it tracking gradients)."""
    positions.requires_grad_(True)
    (gradient,) = torch.autograd.grad(energy_fn(positions), positions)
    return -gradient


def wrong_backward_on_input(energy_fn, positions):
    """Uses .backward() on the caller's tensor: its .grad is set (and it requires grad)."""
    positions.requires_grad_(True)
    energy_fn(positions).backward()
    gradient = positions.grad.clone()
    positions.requires_grad_(False)
    return -gradient


WRONG_ANSWERS = {
    "sign": (wrong_sign, "convention", "MINUS"),
    "energy per atom": (wrong_per_atom_energy, "normalisation", "N times too small"),
    "one-sided difference": (wrong_one_sided_difference, "method", "finite differences, not autograd"),
    "central difference": (wrong_central_difference, "method", "finite differences, not autograd"),
    "requires_grad_ on the input": (wrong_mutates_input, "side effect", "requires_grad=True"),
    "backward on the input": (wrong_backward_on_input, "side effect", "grad set"),
}
