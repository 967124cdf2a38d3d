"""Teacher source of lab 11: the solutions, their notes and the wrong answers (negative controls)."""

import numpy as np
from ase import units
from ase.md.verlet import VelocityVerlet

NOTES = r"""**Line ↔ method**: the copy keeps the caller's atoms where they were; `timestep_fs * units.fs` converts to
ASE's time unit (Å·√(amu/eV) ≈ 10.18 fs); `e[0]` is recorded before the first step, and the drift is the largest
deviation over the run (the Verlet error oscillates, so the last step alone can look better than the run was).
The check prints the drifts for the candidates: doubling Δt multiplies the drift by ≈ 4, the Δt² law of a
second-order integrator. `choose_timestep` keeps the largest conserving step, i.e. the fewest force evaluations
per simulated femtosecond."""


def energy_drift(atoms, timestep_fs: float, duration_fs: float) -> float:
    """max_t |E_tot(t) - E_tot(0)| / N in meV/atom along velocity Verlet NVE (on a copy of ``atoms``)."""
    # BEGIN SOLUTION
    copy = atoms.copy()
    copy.calc = atoms.calc
    dyn = VelocityVerlet(copy, timestep=timestep_fs * units.fs)
    energies = [copy.get_total_energy()]  # eV, before the first step
    for _ in range(int(round(duration_fs / timestep_fs))):
        dyn.run(1)
        energies.append(copy.get_total_energy())
    return float(1000 * np.abs(np.array(energies) - energies[0]).max() / len(copy))
    # END SOLUTION


def choose_timestep(drift_of, candidates_fs, bound: float) -> float:
    """The largest candidate time step (fs) whose drift ``drift_of(dt)`` is at most ``bound`` (meV/atom)."""
    # BEGIN SOLUTION
    return max(dt for dt in candidates_fs if drift_of(dt) <= bound)
    # END SOLUTION


def _run(atoms, timestep, n, energy="total"):
    copy = atoms.copy()
    copy.calc = atoms.calc
    dyn = VelocityVerlet(copy, timestep=timestep)
    get = copy.get_total_energy if energy == "total" else copy.get_potential_energy
    e = [get()]
    for _ in range(n):
        dyn.run(1)
        e.append(get())
    return np.array(e), len(copy)


def wrong_no_units(atoms, timestep_fs, duration_fs):
    """Passes the time step in femtoseconds as if it were ASE's unit."""
    e, n = _run(atoms, timestep_fs, int(round(duration_fs / timestep_fs)))
    return float(1000 * np.abs(e - e[0]).max() / n)


def wrong_potential(atoms, timestep_fs, duration_fs):
    """Follows the potential energy instead of the total energy."""
    e, n = _run(atoms, timestep_fs * units.fs, int(round(duration_fs / timestep_fs)), energy="potential")
    return float(1000 * np.abs(e - e[0]).max() / n)


def wrong_last_step(atoms, timestep_fs, duration_fs):
    """Compares only the last step with the first."""
    e, n = _run(atoms, timestep_fs * units.fs, int(round(duration_fs / timestep_fs)))
    return float(1000 * abs(e[-1] - e[0]) / n)


def wrong_total(atoms, timestep_fs, duration_fs):
    """Forgets to divide by the number of atoms."""
    e, n = _run(atoms, timestep_fs * units.fs, int(round(duration_fs / timestep_fs)))
    return float(1000 * np.abs(e - e[0]).max())


def wrong_in_place(atoms, timestep_fs, duration_fs):
    """Runs the dynamics on the caller's atoms."""
    dyn = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    e = [atoms.get_total_energy()]
    for _ in range(int(round(duration_fs / timestep_fs))):
        dyn.run(1)
        e.append(atoms.get_total_energy())
    return float(1000 * np.abs(np.array(e) - e[0]).max() / len(atoms))


def wrong_smallest(drift_of, candidates_fs, bound):
    """Always the smallest step: safe but wasteful."""
    return min(candidates_fs)


def wrong_ignores_bound(drift_of, candidates_fs, bound):
    """The largest step whatever the drift."""
    return max(candidates_fs)


def wrong_hard_coded(drift_of, candidates_fs, bound):
    """The answer for this potential, typed in: fails for another potential."""
    return 1.0


WRONG_ANSWERS = {
    "no units.fs": ((wrong_no_units, choose_timestep), "convention", "ASE time units"),
    "potential energy": ((wrong_potential, choose_timestep), "convention", "total energy"),
    "last step only": ((wrong_last_step, choose_timestep), "convention", "largest deviation over the whole run"),
    "not per atom": ((wrong_total, choose_timestep), "normalisation", "divide by the number of atoms"),
    "moves the caller's atoms": ((wrong_in_place, choose_timestep), "side effect", "atoms.copy()"),
    "smallest step": ((energy_drift, wrong_smallest), "value", "also conserves the energy"),
    "ignores the bound": ((energy_drift, wrong_ignores_bound), "value", "exceeds the bound"),
    "hard-coded": ((energy_drift, wrong_hard_coded), "value", "a made-up potential"),
}
