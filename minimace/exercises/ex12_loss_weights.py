r"""# Lab 12 — Training: what the loss weights $\lambda_E$ and $\lambda_F$ do to the two errors

**What you will learn**: the loss MACE is trained with, why the energy error is taken per atom, and what the
ratio $\lambda_F / \lambda_E$ does: it moves the fit along a trade-off between the energy and the force errors.
You will see it on a tiny model trained for a few seconds with *your* loss function.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697 v2), section 5 and appendix (training: a weighted sum of
squared energy-per-atom and force errors; $\lambda_E = 1$, $\lambda_F = 1000$ for rMD17).

## The task

1. Write `weighted_loss(pred, batch, lambda_E, lambda_F)` returning the scalar tensor

   $$ \mathcal L = \frac{\lambda_E}{B} \sum_{b=1}^{B} \Big(\frac{\hat E_b - E_b}{N_b}\Big)^2
      + \frac{\lambda_F}{3N} \sum_{i=1}^{N} \sum_{\alpha} \big(\hat F_{i\alpha} - F_{i\alpha}\big)^2 , $$

   for a batch of $B$ configurations ($N_b$ atoms each, $N$ in all): `pred["energy"]` `[B]`, `pred["forces"]`
   `[N, 3]`, `batch["energy"]`, `batch["forces"]`, and `batch["ptr"]` (`[B + 1]`, configuration $b$ holds the
   atoms `ptr[b]:ptr[b+1]`). It must stay differentiable (no `.item()`): training calls `.backward()` on it.
2. The check then trains the same tiny MACE twice for a few seconds with your loss, *energy-heavy*
   $(\lambda_E, \lambda_F) = (1000, 1)$ and *force-heavy* $(1, 1000)$, and prints the test errors. Write
   `answers()` returning a dict with the keys of `exercise.QUESTIONS`, each value one of `"energy-heavy"`,
   `"force-heavy"`. The first two answers are checked against the errors just measured.

The check compares your loss with `minimace.train.weighted_loss(loss_terms(pred, batch), ...)`, on a batch of an
ethanol, a methanol and a water (9, 6 and 3 atoms).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..datasets import bundled, bundled_e0s
from ..graph import batch_graphs
from ..model import MACE
from ..train import loss_terms, weighted_loss as _package_loss
from ._check import ExerciseFailure, expect_answer, make_hint, run_checks

TITLE = "Lab 12 (loss weights λ_E, λ_F)"
STUDENT_FUNCTIONS = ("weighted_loss", "answers")
META = {"kind": "lab", "difficulty": "introductory", "minutes": 25, "prerequisites": ("09",)}
NOTEBOOK_IMPORTS = ["import torch"]
HINTS = (
    "Two mean squared errors: one per configuration (the energy, divided by its number of atoms so that big and "
    "small molecules count alike), one per force component; each multiplied by its λ. Training lowers whichever term "
    "weighs more.",
    "n_atoms = (batch['ptr'][1:] - batch['ptr'][:-1]) gives N_b; .mean() over the B per-atom energy errors and over "
    "all 3N force components; keep everything a tensor.",
    "n = (batch['ptr'][1:] - batch['ptr'][:-1]).to(pred['energy'].dtype); return lambda_E * (((pred['energy'] - "
    "batch['energy']) / n) ** 2).mean() + lambda_F * ((pred['forces'] - batch['forces']) ** 2).mean()",
)
hint = make_hint(HINTS)

RUNS = {"energy-heavy": (1000.0, 1.0), "force-heavy": (1.0, 1000.0)}
QUESTIONS = {
    "smaller force error": "Which run has the smaller test force error?",
    "smaller energy error": "Which run has the smaller test energy error (per atom)?",
    "for molecular dynamics": "Which weighting would you train a potential for molecular dynamics with?",
}
STEPS, N_TRAIN = 30, 16
_TRAINED: dict = {}  # (loss function, λ_E, λ_F) -> test errors


@lru_cache(maxsize=None)
def _graphs(split: str, n_atoms: int, count: int) -> tuple:
    return tuple(c.to_graph(4.0) for c in bundled(split) if len(c.atomic_numbers) == n_atoms)[:count]


def _model() -> MACE:
    e0 = bundled_e0s()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return MACE(r_max=4.0, num_bessel=6, max_ell=1, correlation=2, num_interactions=1,
                    hidden_irreps="8x0e+8x1o", MLP_irreps="8x0e", radial_MLP=[16], avg_num_neighbors=7.0,
                    atomic_numbers=[1, 6, 8], atomic_energies=[e0[1], e0[6], e0[8]]).double()


def train_tiny(loss_fn, lambda_E: float, lambda_F: float) -> dict:
    """Train the tiny MACE for ``STEPS`` full-batch Adam steps with ``loss_fn(pred, batch, λ_E, λ_F)``;
    return the test errors ``{"energy_meV_per_atom", "forces_meV_per_A"}`` (16 bundled ethanol test configs)."""
    model = _model()
    train, test = batch_graphs(list(_graphs("train", 9, N_TRAIN))), batch_graphs(list(_graphs("test", 9, N_TRAIN)))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(STEPS):
        loss = loss_fn(model(train, compute_forces=True, training=True), train, lambda_E, lambda_F)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    pred = {k: v.detach() for k, v in model(test, compute_forces=True).items()}
    n = (test["ptr"][1:] - test["ptr"][:-1]).to(torch.float64)
    return {"energy_meV_per_atom": 1000 * float(((pred["energy"] - test["energy"]).abs() / n).mean()),
            "forces_meV_per_A": 1000 * float((pred["forces"] - test["forces"]).abs().mean())}


def check(weighted_loss, answers, verbose: bool = True):
    """Check ``weighted_loss`` against ``minimace.train``, train twice with it, check ``answers()``."""
    results = {}

    def step_loss():
        graphs = [_graphs("train", n, 1)[0] for n in (9, 6, 3)]
        batch = batch_graphs(graphs)
        pred = _model()(batch, compute_forces=True)  # forces by autograd: not under no_grad
        pred = {k: pred[k].detach().clone().requires_grad_(True) for k in ("energy", "forces")}
        lE, lF = 3.0, 7.0
        got = weighted_loss(pred, batch, lE, lF)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            raise ExerciseFailure("value", f"the loss should be a scalar tensor, got {type(got).__name__}")
        if not got.requires_grad:
            raise ExerciseFailure("value", "the loss is detached from pred (.item(), float(), .detach()?): "
                                  "training needs a tensor it can call .backward() on")
        terms = loss_terms(pred, batch)
        right = _package_loss(terms, {"energy": lE, "forces": lF}).detach()
        n = (batch["ptr"][1:] - batch["ptr"][:-1]).to(torch.float64)
        dE, dF = (pred["energy"] - batch["energy"]).detach(), (pred["forces"] - batch["forces"]).detach()
        e_mse, f_mse = ((dE / n) ** 2).mean(), (dF**2).mean()
        variants = [
            (lE * (dE**2).mean() + lF * f_mse, "normalisation", "the energy error is not divided by the number of "
             "atoms: ((E_pred - E) / N_b)², so that a water and an ethanol count alike"),
            (lE * e_mse + lF * (dF**2).sum(-1).mean(), "normalisation", "the force term is 3× too large: the mean "
             "over the 3N force components, not over the N atoms of |ΔF|²"),
            (lF * e_mse + lE * f_mse, "convention", "λ_E and λ_F are swapped: λ_E multiplies the energy term"),
            (lE * ((dE / n) ** 2).sum() + lF * (dF**2).sum(), "normalisation", "sums instead of means: the loss "
             "would grow with the batch size"),
            (lE * e_mse.sqrt() + lF * f_mse.sqrt(), "convention", "root mean squared errors: the loss uses the "
             "mean squared errors (no square root)"),
            (lE * (dE / n).abs().mean() + lF * dF.abs().mean(), "convention", "mean absolute errors: the loss "
             "uses squared errors"),
        ]
        value = float(got.detach())
        for v, kind, message in variants:
            if abs(value - float(v)) <= 1e-9 * abs(float(v)) and abs(float(v) - float(right)) > 1e-9 * float(right):
                raise ExerciseFailure(kind, message)
        if abs(value - float(right)) > 1e-9 * float(right):
            raise ExerciseFailure("value", f"loss {value:.6g}, minimace.train gives {float(right):.6g} "
                                  f"(energy term {float(lE * e_mse):.4g}, force term {float(lF * f_mse):.4g})")
        return f"{value:.6g} = minimace.train.weighted_loss"

    def step_train():
        for run, (lE, lF) in RUNS.items():
            key = (weighted_loss, lE, lF)  # the same function object is trained once per process
            if key not in _TRAINED:
                _TRAINED[key] = train_tiny(weighted_loss, lE, lF)
            results[run] = _TRAINED[key]
        return "; ".join(f"{run} (λ_E={RUNS[run][0]:g}, λ_F={RUNS[run][1]:g}): energy {r['energy_meV_per_atom']:.0f}"
                         f" meV/atom, forces {r['forces_meV_per_A']:.0f} meV/Å" for run, r in results.items())

    def step_answers():
        given = answers()
        if not isinstance(given, dict) or set(given) != set(QUESTIONS):
            raise ExerciseFailure("answer", f"answers() should return a dict with the keys {list(QUESTIONS)}")
        lower = {key: min(results, key=lambda run: results[run][metric])
                 for key, metric in (("smaller force error", "forces_meV_per_A"),
                                     ("smaller energy error", "energy_meV_per_atom"))}
        other = {"energy-heavy": "force-heavy", "force-heavy": "energy-heavy"}
        notes = []
        for key, metric in (("smaller force error", "forces_meV_per_A"), ("smaller energy error",
                                                                          "energy_meV_per_atom")):
            numbers = ", ".join(f"{run}: {results[run][metric]:.0f}" for run in results)
            notes.append(expect_answer(QUESTIONS[key], given[key], lower[key],
                                       {other[lower[key]]: f"the errors just measured say otherwise ({numbers})"}))
        notes.append(expect_answer(QUESTIONS["for molecular dynamics"], given["for molecular dynamics"], "force-heavy",
                                   {"energy-heavy": "MD integrates the forces only: their error drives the "
                                    "trajectory, and the energy-heavy fit leaves them several times worse (the numbers "
                                    "above); energy conservation itself does not depend on the weights, F = -∂E/∂r "
                                    "holds for any MACE (the MACE recipe for rMD17 is λ_E = 1, λ_F = 1000)"}))
        return "; ".join(notes)

    return run_checks(TITLE, [("the loss vs minimace.train.weighted_loss", step_loss),
                              (f"two short trainings with your loss ({STEPS} steps each)", step_train),
                              ("answers, against the errors just measured", step_answers)], verbose)
