r"""# Lab 10 — Fit a linear ACE potential to a stated accuracy

**What you will learn**: what a linear ACE needs to be accurate — the isolated-atom energies, force data in
the fit, enough radial functions, angular degrees and correlation order — and how a ridge fit with the
regularisation chosen on a validation split behaves; all with `minimace.ace`, on the GFN2-xTB ethanol
configurations bundled with the package (no download).

**Paper**: Drautz, *PRB* 99, 014104 (2019) (the atomic cluster expansion); Batatia et al., *MACE*
(arXiv:2206.07697 v2), section 2 (ACE as the one-layer, fixed-basis special case of MACE).

## The task

Write `fit_ace(train, valid)` that returns a fitted `minimace.ace.LinearACE` for H, C, O, given lists of
graphs with energy and force labels (`r_max` = `exercise.R_MAX`). Use the public API:

```python
from minimace.ace import LinearACE
model = LinearACE([1, 6, 8], e0s=..., r_max=exercise.R_MAX, n_max=..., l_max=..., max_degree=(...)).fit(
    train, valid, energy_weight=..., forces_weight=...)
```

`max_degree[ν - 1]` bounds the total degree $\sum_\xi (n_\xi + 1 + l_\xi)$ of the B-functions of order $\nu$
(its length is the largest $\nu$); `e0s` are the isolated-atom energies (`minimace.datasets.bundled_e0s()`).

**Target** (on the bundled *test* ethanol configurations, which `fit_ace` never sees): energy MAE below
`exercise.TARGET_ENERGY_MEV` meV per configuration and force MAE below `exercise.TARGET_FORCES_MEV` meV/Å,
with at most `exercise.MAX_FEATURES` coefficients (the fit must stay a few seconds). Predicting zero forces gives
a force MAE of several hundred meV/Å: the checker prints that baseline next to your numbers.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..ace import LinearACE, mae_report
from ..datasets import bundled
from ._check import ExerciseFailure, make_hint, run_checks

TITLE = "Lab 10 (linear ACE to a stated accuracy)"
STUDENT_FUNCTIONS = ("fit_ace",)
META = {"kind": "lab", "difficulty": "intermediate", "minutes": 40, "prerequisites": ("04",)}
NOTEBOOK_IMPORTS = ["import torch", "", "from minimace.ace import LinearACE", "from minimace.datasets import bundled_e0s"]
HINTS = (
    "Three things decide the accuracy: the energy zero (isolated-atom energies), using the forces in the fit "
    "(27 labels per ethanol against 1 energy), and a basis rich enough in angles and correlation order (ν = 2 at "
    "least: three-body terms).",
    "LinearACE([1, 6, 8], e0s=bundled_e0s(), r_max=exercise.R_MAX, n_max=..., l_max=..., max_degree=(..., ...)); "
    "model.fit_info['num_features'] tells the size; keep forces_weight > 0.",
    "LinearACE([1, 6, 8], e0s=bundled_e0s(), r_max=exercise.R_MAX, n_max=4, l_max=2, max_degree=(4, 6))"
    ".fit(train, valid, energy_weight=30.0, forces_weight=1.0)",
)
hint = make_hint(HINTS)

R_MAX = 4.5
TARGET_ENERGY_MEV, TARGET_FORCES_MEV, MAX_FEATURES = 100.0, 160.0, 1000
N_TRAIN, N_VALID = 60, 20


@lru_cache(maxsize=None)
def _ethanol(split: str) -> tuple:
    """Graphs of the bundled ethanol configurations (9 atoms) of a split, with labels."""
    return tuple(c.to_graph(R_MAX) for c in bundled(split) if len(c.atomic_numbers) == 9)


def data() -> tuple[list, list]:
    """``(train, valid)``: the first ``N_TRAIN`` and the last ``N_VALID`` bundled training ethanol configurations."""
    graphs = list(_ethanol("train"))
    return graphs[:N_TRAIN], graphs[-N_VALID:]


def check(fn, verbose: bool = True):
    """Fit with ``fn(train, valid)``, then measure the test errors against the stated targets."""
    state = {}

    def step_fit():
        train, valid = data()
        model = fn([dict(g) for g in train], [dict(g) for g in valid])
        if not isinstance(model, LinearACE):
            raise ExerciseFailure("value", f"fit_ace should return a minimace.ace.LinearACE, got {type(model).__name__}")
        if model.coefficients is None:
            raise ExerciseFailure("value", "the model is not fitted: call .fit(train, valid) (it returns the model)")
        n = int(model.coefficients.numel())
        if n > MAX_FEATURES:
            raise ExerciseFailure("value", f"{n} coefficients > {MAX_FEATURES}: choose a smaller basis (n_max, l_max "
                                  "or max_degree) — the fit must stay fast")
        state["model"], state["n"] = model, n
        return f"{n} coefficients, λ = {model.fit_info.get('lambda', float('nan')):.0e}"

    def step_errors():
        model, test = state["model"], list(_ethanol("test"))
        report = mae_report(model, test)
        forces = torch.cat([g["forces"] for g in test])
        baseline = 1000 * float(forces.abs().mean())  # predicting F = 0
        e, f = report["energy_mae_meV"], report["forces_mae_meV_per_A"]
        numbers = (f"test ({report['n_configs']} configs): energy MAE {e:.1f} meV, force MAE {f:.1f} meV/Å "
                   f"(F = 0 gives {baseline:.0f} meV/Å)")
        basis = model.basis
        if f >= TARGET_FORCES_MEV:
            orders = len(basis.counts()) - 1 if hasattr(basis, "counts") else "?"
            why = (" — at most ν = 1 (two-body) terms: add a second entry to max_degree" if orders == 1 else
                   " — enlarge the basis (n_max, l_max, max_degree) or keep forces_weight > 0")
            raise ExerciseFailure("value", f"forces: {numbers}; target < {TARGET_FORCES_MEV:g} meV/Å{why}")
        if e >= TARGET_ENERGY_MEV:
            why = (" — no isolated-atom energies: pass e0s=bundled_e0s()" if not model.e0s else
                   " — raise energy_weight")
            raise ExerciseFailure("value", f"energies: {numbers}; target < {TARGET_ENERGY_MEV:g} meV{why}")
        return numbers

    return run_checks(TITLE, [("fit on the bundled ethanol training set", step_fit),
                              (f"test errors below {TARGET_ENERGY_MEV:g} meV and {TARGET_FORCES_MEV:g} meV/Å",
                               step_errors)], verbose)
