r"""# Lab 11 — Molecular dynamics: choose a time step that conserves the energy

**What you will learn**: how to run NVE molecular dynamics with ASE's velocity Verlet integrator and a minimace
model (`MiniMACECalculator`), how to measure energy conservation, and why the error of the total energy grows
like $\Delta t^2$: a time step is a trade-off between conservation and the number of force evaluations.

**Paper**: Batatia et al., *MACE* (arXiv:2206.07697 v2), section 3 (forces as the exact gradient of the energy,
which makes the dynamics conservative); Swope, Andersen, Berens, Wilson, *J. Chem. Phys.* 76, 637 (1982)
(velocity Verlet).

## The task

The checker gives you ethanol (`exercise.start()`: a bundled GFN2-xTB geometry, velocities at 300 K, the
calculator attached). The potential is a small MACE with fixed random weights (`exercise.calculator()`): smooth
and exactly conservative like any MACE, but untrained, so its vibrations are not those of real ethanol. Write

1. `energy_drift(atoms, timestep_fs, duration_fs)`: run `ase.md.verlet.VelocityVerlet` with a time step of
   `timestep_fs` femtoseconds (ASE's time unit is not the femtosecond: multiply by `ase.units.fs`) for
   `round(duration_fs / timestep_fs)` steps **on a copy** of `atoms` (`atoms.copy()`, then attach
   `atoms.calc`), and return $\max_t |E_\text{tot}(t) - E_\text{tot}(0)| / N_\text{atoms}$ in **meV per atom**
   ($E_\text{tot}$ = potential + kinetic energy, `get_total_energy()`; include $t = 0$ and every step);
2. `choose_timestep(drift_of, candidates_fs, bound)`: `drift_of(dt)` returns the drift for a time step `dt`
   (over `exercise.DURATION_FS`); return the largest candidate whose drift is at most `bound` meV/atom.

The checker compares your drift with its own run, checks that your `atoms` were not moved, then asks your
`choose_timestep` for the time step of this system with the bound `exercise.BOUND` and the candidates
`exercise.CANDIDATES` (its own drifts: the numbers are printed in the check), and once more with the drifts
of another, made-up potential.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

from ..calculator import MiniMACECalculator
from ..datasets import bundled
from ..model import MACE
from ._check import ExerciseFailure, first_match, make_hint, run_checks

TITLE = "Lab 11 (MD: a time step that conserves energy)"
STUDENT_FUNCTIONS = ("energy_drift", "choose_timestep")
META = {"kind": "lab", "difficulty": "intermediate", "minutes": 30, "prerequisites": ("06", "09")}
NOTEBOOK_IMPORTS = ["import numpy as np", "import torch", "from ase import units",
                    "from ase.md.verlet import VelocityVerlet"]
HINTS = (
    "Velocity Verlet conserves a 'shadow' energy close to the true one; the difference oscillates with an amplitude "
    "∝ Δt². Measure the largest deviation of the total energy from its start, per atom, then keep the largest Δt "
    "that stays within the bound.",
    "copy = atoms.copy(); copy.calc = atoms.calc; dyn = VelocityVerlet(copy, timestep=timestep_fs * units.fs); call "
    "dyn.run(1) in a loop and record copy.get_total_energy() (eV) before the first step and after each step.",
    "e = [copy.get_total_energy()]; for _ in range(n): dyn.run(1); e.append(copy.get_total_energy()); "
    "return 1000 * np.abs(np.array(e) - e[0]).max() / len(copy)  —  and max(dt for dt in candidates_fs if "
    "drift_of(dt) <= bound)",
)
hint = make_hint(HINTS)

CANDIDATES, DURATION_FS, BOUND, TEMPERATURE_K = (0.5, 1.0, 2.0, 4.0), 16.0, 0.25, 300.0
N_ATOMS = 9  # ethanol


@lru_cache(maxsize=None)
def _model() -> MACE:
    with torch.random.fork_rng():
        torch.manual_seed(3)
        return MACE(r_max=4.0, num_bessel=6, max_ell=2, correlation=2, num_interactions=1,
                    hidden_irreps="8x0e+8x1o", MLP_irreps="8x0e", radial_MLP=[16], avg_num_neighbors=7.0,
                    atomic_numbers=[1, 6, 8], atomic_inter_scale=4.0).double()


def calculator() -> MiniMACECalculator:
    """The potential of the lab: a small MACE with fixed random weights, float64."""
    return MiniMACECalculator(_model())


def start():
    """Ethanol (first bundled training geometry) with 300 K Maxwell–Boltzmann velocities and the calculator."""
    atoms = bundled("train", index=":1")[0].to_atoms()
    atoms.calc = calculator()
    thermalize_momenta(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(0))
    return atoms


@lru_cache(maxsize=None)
def _trajectory(timestep: float, n_steps: int) -> tuple:
    """(total, potential) energies in eV at every step of the checker's own run; ``timestep`` in ASE units."""
    atoms = start()
    dyn = VelocityVerlet(atoms, timestep=timestep)
    total, potential = [atoms.get_total_energy()], [atoms.get_potential_energy()]
    for _ in range(n_steps):
        dyn.run(1)
        total.append(atoms.get_total_energy())
        potential.append(atoms.get_potential_energy())
    return np.array(total), np.array(potential)


def _drift(dt_fs: float) -> float:
    total, _ = _trajectory(dt_fs * units.fs, int(round(DURATION_FS / dt_fs)))
    return float(1000 * np.abs(total - total[0]).max() / N_ATOMS)


def check(energy_drift, choose_timestep, verbose: bool = True):
    """Check ``energy_drift`` against the checker's own velocity Verlet run, then ``choose_timestep``."""
    dt = 1.0

    def step_drift():
        atoms = start()
        before = (atoms.positions.copy(), atoms.get_momenta().copy())
        got = energy_drift(atoms, dt, DURATION_FS)
        if not np.array_equal(atoms.positions, before[0]) or not np.array_equal(atoms.get_momenta(), before[1]):
            raise ExerciseFailure("side effect", "the caller's atoms were moved: run the dynamics on atoms.copy() "
                                  "(with atoms.calc attached to the copy)")
        if not isinstance(got, (float, int, np.floating)) or not np.isfinite(got):
            raise ExerciseFailure("value", f"energy_drift should return a finite number, got {got!r}")
        n = int(round(DURATION_FS / dt))
        total, potential = _trajectory(dt * units.fs, n)
        right = _drift(dt)
        out = torch.tensor([float(got)], dtype=torch.float64)
        as_tensor = lambda x: torch.tensor([float(x)], dtype=torch.float64)  # noqa: E731
        if abs(float(got) - right) <= 1e-6 * right:
            return f"{right:.4f} meV/atom over {DURATION_FS:g} fs at {dt:g} fs, as the checker's run"
        first_match(out, [
            (as_tensor(right * N_ATOMS), "normalisation", "this is the drift of the whole molecule: divide by the number "
             "of atoms (meV per atom)"),
            (as_tensor(right / 1000), "normalisation", "this is in eV per atom: the bound is in meV per atom"),
            (as_tensor(1000 * np.abs(potential - potential[0]).max() / N_ATOMS), "convention",
             "this is the change of the potential energy: the conserved quantity is the total energy "
             "(get_total_energy = potential + kinetic)"),
            (as_tensor(1000 * abs(total[-1] - total[0]) / N_ATOMS), "convention",
             "this is the change between the first and the last step: the drift is the largest deviation over the "
             "whole run (the error oscillates)"),
            (as_tensor(1000 * np.abs(total[1:] - total[1]).max() / N_ATOMS), "convention",
             "the reference is E_tot(0) before the first step: record the energy before running"),
        ])
        total_ase, _ = _trajectory(dt, n)  # timestep=dt without units.fs: dt ASE time units ≈ 10 fs
        first_match(out, [(as_tensor(1000 * np.abs(total_ase - total_ase[0]).max() / N_ATOMS), "convention",
                           f"the time step is {dt:g} ASE time units ≈ {dt / units.fs:.1f} fs: pass timestep_fs * "
                           "ase.units.fs to VelocityVerlet")])
        raise ExerciseFailure("value", f"your drift {float(got):.6g} meV/atom differs from the checker's run "
                              f"({right:.6g} meV/atom at {dt:g} fs over {DURATION_FS:g} fs)")

    def step_choose():
        drifts = {c: _drift(c) for c in CANDIDATES}
        table = ", ".join(f"{c:g} fs: {d:.3f}" for c, d in drifts.items())
        right = max(c for c in CANDIDATES if drifts[c] <= BOUND)
        for label, table_of, expected in (("this potential", drifts, right),
                                          ("a made-up potential", dict(zip(CANDIDATES, (0.01, 0.05, 0.2, 0.9))), 4.0)):
            calls = []

            def drift_of(c, table_of=table_of, calls=calls):
                calls.append(c)
                if c not in table_of:
                    raise ExerciseFailure("value", f"drift_of({c!r}): ask only for the candidates {CANDIDATES}")
                return table_of[c]

            bound = BOUND if table_of is drifts else 1.0
            got = choose_timestep(drift_of, CANDIDATES, bound)
            if got not in CANDIDATES:
                raise ExerciseFailure("value", f"{label}: return one of the candidates {CANDIDATES}, got {got!r}")
            where = f"{label} (drift in meV/atom {', '.join(f'{c:g} fs: {table_of[c]:.3f}' for c in CANDIDATES)}; " \
                    f"bound {bound:g})"
            if table_of[got] > bound:
                raise ExerciseFailure("value", f"{where}: at {got:g} fs the drift {table_of[got]:.3f} exceeds the "
                                      "bound — the energy is not conserved, take a smaller step")
            if got != expected:
                raise ExerciseFailure("value", f"{where}: {expected:g} fs also conserves the energy — the largest "
                                      f"such step needs {expected / got:g}× fewer force evaluations")
        ratio = drifts[2.0] / drifts[1.0]
        return f"{right:g} fs (drifts {table}); doubling Δt multiplies the drift by {ratio:.2f} ≈ 4 = 2²"

    return run_checks(TITLE, [(f"energy drift at {dt:g} fs vs the checker's velocity Verlet run", step_drift),
                              (f"the largest time step with a drift ≤ {BOUND:g} meV/atom", step_choose)], verbose)
