r"""# Exercise 6 — Forces as $-\partial E / \partial \mathbf r$ with autograd, checked by finite differences

**What you will learn**: how an interatomic potential gets forces that are exactly the negative gradient
of its energy (so they conserve energy), with one call of `torch.autograd.grad`, and how to verify any
gradient with central finite differences.

**Prerequisites**: notebook 06 (readout and the full model).

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697), Sec. 3 ("forces are computed as the negative
gradient of the energy with respect to the positions") and Eq. (13) for $E = \sum_i E_i$.

## The task

Write `forces(energy_fn, positions)` returning the forces `[N, 3]`

$$ \mathbf F_i = -\frac{\partial E}{\partial \mathbf r_i}, $$

where `energy_fn(positions)` returns the total energy $E$ (a scalar tensor) of positions `[N, 3]`.
Do not modify `positions` in place; return a tensor of the same dtype.

The checker gives you a real MACE (`minimace.MACE`, small and with random weights) on an ethanol molecule
from the bundled GFN2-xTB set. It compares your forces with central finite differences
$F_{i\alpha} \approx -[E(\mathbf r + h\mathbf e_{i\alpha}) - E(\mathbf r - h\mathbf e_{i\alpha})] / 2h$
(an oracle that knows nothing of autograd), with the forces the model returns itself, and checks that they
rotate with the molecule and sum to zero (no net force on an isolated molecule).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import torch

from ..datasets import bundled
from ..graph import atoms_to_graph, batch_graphs
from ..model import MACE
from ._check import DTYPES, ExerciseFailure, expect_close, expect_equivariant, expect_shape, max_error, run_checks

TITLE = "Exercise 6 (forces by autograd)"
STUDENT_FUNCTION = "forces"
NOTEBOOK_IMPORTS = ["from typing import Callable", "", "import torch"]
HINT = "positions = positions.detach().requires_grad_(True); energy = energy_fn(positions); torch.autograd.grad(...)"
NOTES = r"""**Line ↔ equation**: `requires_grad_` makes $\mathbf r$ a leaf that autograd differentiates with respect to;
`energy` is $E(\mathbf r)$; `torch.autograd.grad` returns $\partial E / \partial \mathbf r$ `[N, 3]`; the minus sign makes
it a force. (Inside a training loop, MACE passes `create_graph=True` so that a loss on the forces can be
differentiated again with respect to the weights.)"""

R_MAX = 4.0


def forces(energy_fn: Callable[[torch.Tensor], torch.Tensor], positions: torch.Tensor) -> torch.Tensor:
    """F = -∂E/∂r: ``energy_fn`` maps positions [N, 3] to a scalar energy -> forces [N, 3]."""
    # BEGIN SOLUTION
    positions = positions.detach().requires_grad_(True)  # [N, 3], a fresh leaf
    energy = energy_fn(positions)  # scalar
    (gradient,) = torch.autograd.grad(energy, positions)  # ∂E/∂r: [N, 3]
    return -gradient
    # END SOLUTION


@lru_cache(maxsize=None)
def _model(dtype: torch.dtype) -> MACE:
    with torch.random.fork_rng():
        torch.manual_seed(6)
        model = MACE(r_max=R_MAX, num_bessel=6, max_ell=2, correlation=2, num_interactions=2,
                     hidden_irreps="8x0e+8x1o", MLP_irreps="8x0e", radial_MLP=[16, 16], avg_num_neighbors=8.0,
                     atomic_numbers=[1, 6, 8])
    return model.to(dtype)


def system(dtype: torch.dtype = torch.float64) -> tuple[Callable, torch.Tensor, dict]:
    """``(energy_fn, positions, batch)`` for the first bundled ethanol configuration and a small MACE."""
    config = bundled("train", index=":1")[0]
    batch = batch_graphs([atoms_to_graph(config.to_atoms(), R_MAX, dtype=dtype)])
    model = _model(dtype)

    def energy_fn(positions: torch.Tensor) -> torch.Tensor:
        return model.node_energies(batch, positions).sum()  # E = Σ_i E_i (Eq. 13)

    return energy_fn, batch["positions"].clone(), batch


def finite_difference_forces(energy_fn: Callable, positions: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    """Central differences -[E(r + h e) - E(r - h e)] / 2h for every coordinate (3N pairs of energies)."""
    out = torch.zeros_like(positions)
    with torch.no_grad():
        for idx in range(positions.numel()):
            step = torch.zeros_like(positions).view(-1)
            step[idx] = h
            step = step.view_as(positions)
            out.view(-1)[idx] = -(energy_fn(positions + step) - energy_fn(positions - step)) / (2 * h)
    return out


def check(fn, verbose: bool = True):
    """Check ``fn(energy_fn, positions) -> [N, 3]`` with finite differences, the model's forces, symmetry."""

    def step_finite_differences():
        energy_fn, pos, _ = system(torch.float64)
        before = pos.clone()
        out = fn(energy_fn, pos)
        expect_shape(out, tuple(pos.shape), "the forces")
        if not torch.equal(pos, before):
            raise ExerciseFailure("value", "the positions were modified in place")
        fd = finite_difference_forces(energy_fn, pos)
        err, scale = max_error(out, fd), fd.abs().max().item()
        if torch.allclose(out, -fd, rtol=1e-5, atol=1e-7) and not torch.allclose(out, fd, rtol=1e-5, atol=1e-7):
            raise ExerciseFailure("convention", "wrong sign: the force is MINUS the gradient of the energy")
        if torch.allclose(out * pos.shape[0], fd, rtol=1e-5, atol=1e-7):
            raise ExerciseFailure("normalisation", "N times too small: differentiate the total energy, not E / N")
        if not err <= 1e-7 + 1e-5 * scale:
            raise ExerciseFailure("value", f"differs from central finite differences by up to {err:.2e} "
                                  f"(allowed {1e-7 + 1e-5 * scale:.1e})")
        return f"max |F - F_fd| = {err:.1e} eV/Å"

    def step_model(dtype):
        def step():
            energy_fn, pos, batch = system(dtype)
            out = fn(energy_fn, pos)
            return expect_close(out, _model(dtype)(batch)["forces"], f"the forces ({dtype}) vs MACE.forward")
        return step

    def step_symmetry():
        energy_fn, pos, _ = system(torch.float64)
        total = fn(energy_fn, pos).sum(0).abs().max().item()
        if total > 1e-10:
            raise ExerciseFailure("value", f"the forces on an isolated molecule must sum to zero, got {total:.1e}")
        note = expect_equivariant(lambda p: fn(energy_fn, p), (pos,), ("cartesian_points",), "cartesian_vectors",
                                  tests=("rotation", "reflection", "translation"), n_trials=2)
        return f"Σ_i F_i = {total:.1e}; rotate with the molecule, {note}"

    steps = [("central finite differences (float64)", step_finite_differences)]
    steps += [(f"vs the model's own forces in {str(d)[6:]}", step_model(d)) for d in DTYPES]
    steps.append(("zero net force, equivariance", step_symmetry))
    return run_checks(TITLE, steps, verbose)


# plausible wrong answers, used by the tests as negative controls
def wrong_sign(energy_fn, positions):
    """Returns +∂E/∂r."""
    return -forces(energy_fn, positions)


def wrong_per_atom_energy(energy_fn, positions):
    """Differentiates the energy per atom E / N."""
    return forces(lambda p: energy_fn(p) / p.shape[0], positions)


def wrong_one_sided_difference(energy_fn, positions, h=1e-2):
    """A forward difference with a large step instead of the exact gradient."""
    out = torch.zeros_like(positions)
    with torch.no_grad():
        e0 = energy_fn(positions)
        for idx in range(positions.numel()):
            step = torch.zeros_like(positions).view(-1)
            step[idx] = h
            out.view(-1)[idx] = -(energy_fn(positions + step.view_as(positions)) - e0) / h
    return out


WRONG_ANSWERS = {"sign": wrong_sign, "energy per atom": wrong_per_atom_energy,
                 "one-sided difference": wrong_one_sided_difference}
