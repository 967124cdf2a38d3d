r"""# Exercise 6 — Forces as $-\partial E / \partial \mathbf r$ with autograd, checked by finite differences

**What you will learn**: how an interatomic potential gets forces that are exactly the negative gradient
of its energy (so they conserve energy), with one call of `torch.autograd.grad`, and how to verify any
gradient with central finite differences.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697), Sec. 3 ("forces are computed as the negative
gradient of the energy with respect to the positions") and Eq. (13) for $E = \sum_i E_i$.

## The task

Write `forces(energy_fn, positions)` returning the forces `[N, 3]`

$$ \mathbf F_i = -\frac{\partial E}{\partial \mathbf r_i}, $$

where `energy_fn(positions)` returns the total energy $E$ (a scalar tensor) of positions `[N, 3]`.
Use autograd (one evaluation of the energy), do not modify the caller's `positions` (not its values, not its
`requires_grad` flag, not its `.grad`), and return a tensor of the same dtype.

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
from ._check import (DTYPES, ExerciseFailure, expect_close, expect_equivariant, expect_shape, first_match, make_hint,
                     max_error, run_checks)

TITLE = "Exercise 6 (forces by autograd)"
STUDENT_FUNCTIONS = ("forces",)
META = {"kind": "exercise", "difficulty": "introductory", "minutes": 20, "prerequisites": ("06",)}
NOTEBOOK_IMPORTS = ["from typing import Callable", "", "import torch"]
HINTS = (
    "Autograd differentiates with respect to tensors that require gradients: evaluate the energy once on "
    "positions that track gradients, then ask for ∂E/∂r. Leave the caller's tensor alone.",
    "positions.detach().requires_grad_(True) gives a fresh leaf (the caller's tensor keeps requires_grad=False); "
    "torch.autograd.grad(energy, leaf) returns a tuple with ∂E/∂r [N, 3].",
    "r = positions.detach().requires_grad_(True); (g,) = torch.autograd.grad(energy_fn(r), r); return -g",
)
hint = make_hint(HINTS)

R_MAX = 4.0
AXES = ("atom", "xyz")


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


class _Counted:
    """``energy_fn`` that counts its calls (autograd needs one; finite differences need 2 per coordinate)."""

    def __init__(self, energy_fn):
        self.energy_fn, self.calls = energy_fn, 0

    def __call__(self, positions):
        self.calls += 1
        return self.energy_fn(positions)


def check(fn, verbose: bool = True):
    """Check ``fn(energy_fn, positions) -> [N, 3]`` with finite differences, the model's forces, symmetry."""

    def step_finite_differences():
        energy_fn, pos, _ = system(torch.float64)
        before = pos.clone()
        counted = _Counted(energy_fn)
        out = fn(counted, pos)
        if pos.requires_grad or pos.grad is not None:
            raise ExerciseFailure("side effect", "your function changed the caller's positions tensor: it now has "
                                  f"requires_grad={pos.requires_grad}, grad {'set' if pos.grad is not None else 'None'}"
                                  " (requires_grad_ / backward on the input itself); differentiate with respect to "
                                  "a fresh leaf, positions.detach().requires_grad_(True)")
        if not torch.equal(pos, before):
            raise ExerciseFailure("side effect", "the caller's positions were modified in place (atom "
                                  f"{int((pos - before).abs().sum(-1).argmax())} moved)")
        expect_shape(out, tuple(pos.shape), "the forces", AXES)
        if counted.calls > 3:
            raise ExerciseFailure("method", f"energy_fn was called {counted.calls} times for {pos.numel()} "
                                  "coordinates: these are finite differences, not autograd (evaluate the energy "
                                  "once, then torch.autograd.grad)")
        # an oracle that knows nothing of autograd: central differences, 3N pairs of energies
        h, fd = 1e-5, torch.zeros_like(pos)
        with torch.no_grad():
            for idx in range(pos.numel()):
                step = torch.zeros(pos.numel(), dtype=pos.dtype)
                step[idx] = h
                fd.view(-1)[idx] = -(energy_fn(pos + step.view_as(pos)) - energy_fn(pos - step.view_as(pos))) / (2 * h)
        first_match(out.detach(), [
            (-fd, "convention", "wrong sign: the force is MINUS the gradient of the energy"),
            (fd / pos.shape[0], "normalisation", "N times too small: differentiate the total energy, not E / N"),
        ])
        err, scale = max_error(out, fd), fd.abs().max().item()
        if not err <= 1e-7 + 1e-5 * scale:
            atom = int((out.detach() - fd).abs().max(-1).values.argmax())
            raise ExerciseFailure("value", f"differs from central finite differences by up to {err:.2e} "
                                  f"(atom {atom}; allowed {1e-7 + 1e-5 * scale:.1e})")
        return f"max |F - F_fd| = {err:.1e} eV/Å, {counted.calls} call(s) of energy_fn"

    def step_model(dtype):
        def step():
            energy_fn, pos, batch = system(dtype)
            out = fn(energy_fn, pos)
            return expect_close(out, _model(dtype)(batch)["forces"], f"the forces ({dtype}) vs MACE.forward",
                                axes=AXES)
        return step

    def step_symmetry():
        energy_fn, pos, _ = system(torch.float64)
        total = fn(energy_fn, pos).sum(0).abs().max().item()
        if total > 1e-10:
            raise ExerciseFailure("value", f"the forces on an isolated molecule must sum to zero, got {total:.1e}")
        note = expect_equivariant(lambda p: fn(energy_fn, p), (pos,), ("cartesian_points",), "cartesian_vectors",
                                  tests=("rotation", "reflection", "translation"), n_trials=2)
        return f"Σ_i F_i = {total:.1e}; rotate with the molecule, {note}"

    steps = [("autograd, no side effects, central finite differences (float64)", step_finite_differences)]
    steps += [(f"vs the model's own forces in {str(d)[6:]}", step_model(d)) for d in DTYPES]
    steps.append(("zero net force, equivariance", step_symmetry))
    return run_checks(TITLE, steps, verbose)
