r"""The equivariance and physics checks of any interatomic potential: ``verify(potential, atoms) -> Report``.

A potential is an ASE calculator, a minimace model, or a function ``(positions, numbers, cell, pbc) -> energy
[, forces[, stress]]`` (numpy arrays in, floats / arrays in eV, eV/Å, eV/Å³ out; a dict with those keys also
works). Every check transforms the structure, evaluates the potential again, and compares with what physics
requires. Each check has one dimensionless error and a tolerance that depends on the precision of the
potential (``dtype``); ``docs/verification.md`` explains the numbers.

========================= ==========================================================================================
check                     what must hold
========================= ==========================================================================================
``rotation``              :math:`E(R x) = E(x)`, :math:`F(R x) = R F(x)`, :math:`\sigma(R x) = R \sigma R^\top` (cell rotated too)
``reflection``            the same for improper :math:`-R` (:math:`\det = -1`): parity
``translation``           :math:`E(x + t) = E(x)`, :math:`F(x + t) = F(x)`, :math:`\sigma(x + t) = \sigma(x)`
``permutation``           relabelling atoms relabels forces and leaves energy and stress unchanged
``forces_gradient``       :math:`F = -\partial E / \partial x`: central differences of E over a step 2h against the mean force
``stress_strain``         :math:`\sigma = \frac{1}{V} \partial E / \partial \varepsilon`: the same along finite strains (periodic cells)
``cutoff_smoothness``     E and F continuous as one neighbour moves out through the cutoff (fine scan)
``extensivity``           two copies far apart (periodic: side by side) have the energy of the two parts
``nve_conservation``      velocity-Verlet energy error falls like :math:`\Delta t^2` (halving the step quarters it)
========================= ==========================================================================================

Errors are relative: ``max|observed - expected| / max(|expected|, floor)`` per quantity (energy, forces,
stress), the largest of them is the check's error.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

CHECKS = ("rotation", "reflection", "translation", "permutation", "forces_gradient", "stress_strain",
          "cutoff_smoothness", "extensivity", "nve_conservation")

#: tolerance of each check's error: {check: {dtype: tolerance}} (docs/verification.md gives the reasons)
TOLERANCES = {
    "rotation": {"float64": 1e-10, "float32": 1e-4},
    "reflection": {"float64": 1e-10, "float32": 1e-4},
    "translation": {"float64": 1e-10, "float32": 1e-4},
    "permutation": {"float64": 1e-10, "float32": 1e-4},
    "forces_gradient": {"float64": 1e-6, "float32": 3e-3},
    "stress_strain": {"float64": 1e-6, "float32": 3e-3},
    "cutoff_smoothness": {"float64": 1e-6, "float32": 1e-3},
    "extensivity": {"float64": 1e-10, "float32": 1e-4},
    "nve_conservation": {"float64": 0.5, "float32": 0.5},
}
EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}
#: smallest scales of the relative errors (so that zero forces or stress do not divide by zero)
FLOOR = {"energy": 1e-3, "forces": 1e-3, "stress": 1e-5}  # eV, eV/Å, eV/Å³
CUTOFF_SPACING = {"float64": 1e-5, "float32": 1e-3}  # Å, between the points of the cutoff scan
LENGTH = 0.3  # Å: length over which forces change; finite-difference steps move atoms by LENGTH/2 at most


class VerificationError(AssertionError):
    """A potential failed a check; the message is the report table."""


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------
@dataclass
class CheckResult:
    """One check: its ``error`` (dimensionless, see the module docstring) against its ``tolerance``."""

    name: str
    error: float
    tolerance: float
    details: dict = field(default_factory=dict)  # error of each quantity, and numbers such as the step used
    info: str = ""
    seconds: float = 0.0
    evaluations: int = 0

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.tolerance)  # NaN fails


@dataclass(repr=False)
class Report:
    """Results of ``verify``: ``report.passed``, ``report["rotation"].error``, ``print(report)``, ``report.plot()``."""

    potential: str
    dtype: str
    n_atoms: int
    results: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # check -> why it does not apply
    seconds: float = 0.0  # CPU time (time.process_time) of the whole verification

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, r in self.results.items() if not r.passed]

    def __getitem__(self, name: str) -> CheckResult:
        if name not in self.results:
            why = self.skipped.get(name, "it was not asked for")
            raise KeyError(f"no result for check {name!r}: {why}")
        return self.results[name]

    def __iter__(self):
        return iter(self.results.values())

    def __contains__(self, name: str) -> bool:
        return name in self.results

    def table(self) -> str:
        head = f"verify: {self.potential} on {self.n_atoms} atoms, {self.dtype}"
        rows = [head, f"{'check':<18} {'status':<6} {'error':>9} {'tolerance':>9}  details"]
        for r in self.results.values():
            detail = ", ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}" for k, v in r.details.items())
            rows.append(f"{r.name:<18} {'pass' if r.passed else 'FAIL':<6} {r.error:>9.2e} {r.tolerance:>9.1e}  "
                        f"{detail}" + (f"; {r.info}" if r.info else ""))
        for name, why in self.skipped.items():
            rows.append(f"{name:<18} {'n/a':<6} {'':>9} {'':>9}  {why}")
        n_fail = len(self.failed)
        rows.append("all checks passed" if n_fail == 0 else f"{n_fail} check(s) FAILED: {', '.join(self.failed)}")
        return "\n".join(rows)

    __str__ = __repr__ = table

    def to_dict(self) -> dict:
        return {"potential": self.potential, "dtype": self.dtype, "n_atoms": self.n_atoms, "passed": self.passed,
                "cpu_seconds": self.seconds,
                "checks": {n: dict(asdict(r), passed=r.passed) for n, r in self.results.items()},
                "skipped": dict(self.skipped)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=float)

    def assert_passed(self) -> "Report":
        if not self.passed:
            raise VerificationError(self.table())
        return self

    def plot(self, path: Optional[str] = None, ax=None):
        """Error of each check (dot) against its tolerance (bar end), log scale; returns the figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(8, 0.45 * len(self.results) + 1.2))
        else:
            fig = ax.figure
        names = list(self.results)[::-1]
        y = np.arange(len(names))
        tol = np.array([self.results[n].tolerance for n in names])
        err = np.array([self.results[n].error for n in names])
        shown = np.clip(err, 1e-17, None)  # an error of exactly 0 is drawn at 1e-17
        ax.barh(y, tol, color="0.85", height=0.6, label="tolerance")
        ok = err <= tol
        ax.scatter(shown[ok], y[ok], color="tab:green", zorder=3, label="error (pass)")
        ax.scatter(shown[~ok], y[~ok], color="tab:red", marker="X", s=60, zorder=3, label="error (FAIL)")
        ax.set_xscale("log")
        ax.set_xlim(min(shown.min(), tol.min()) / 10, max(shown.max(), tol.max()) * 10)
        ax.set_yticks(y, names)
        ax.set_xlabel("error (relative; nve: drift ratio at Δt/2 vs Δt)")
        ax.set_title(f"{self.potential} ({self.n_atoms} atoms, {self.dtype}): "
                     + ("all passed" if self.passed else f"{len(self.failed)} failed"), fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


# ---------------------------------------------------------------------------------------------------
# One interface for the three kinds of potential
# ---------------------------------------------------------------------------------------------------
def _dtype_name(dtype) -> Optional[str]:
    if dtype is None:
        return None
    name = str(dtype).replace("torch.", "").replace("numpy.", "")
    name = {"double": "float64", "float": "float32", "single": "float32"}.get(name, name)
    if name not in EPS:
        raise ValueError(f"dtype {dtype!r}: expected float64 or float32")
    return name


def _array(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _stress_3x3(s) -> np.ndarray:
    s = _array(s).reshape(-1)
    if s.size == 9:
        return s.reshape(3, 3)
    if s.size == 6:  # Voigt order of ASE: xx, yy, zz, yz, xz, xy
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise ValueError(f"stress must have 9 or 6 (Voigt) components, got {s.size}")


class Potential:
    """``potential(atoms, stress=False) -> (energy, forces or None, stress 3x3 or None)`` for any kind of input."""

    def __init__(self, obj, dtype=None, cutoff: Optional[float] = None):
        self.obj, self.calc, self.fn = obj, None, None
        self.evaluations = 0
        dtype = _dtype_name(dtype)
        if _is_calculator(obj):
            self.calc, self.name = obj, type(obj).__name__
            own = getattr(obj, "dtype", None) or getattr(obj, "default_dtype", None)
            try:
                own = _dtype_name(own)
            except ValueError:
                own = None
            self.dtype = dtype or own or "float64"
        elif _is_torch_module(obj):
            model = _as_minimace_model(obj)
            own = _dtype_name(next(model.parameters()).dtype)
            self.dtype = dtype or own
            if self.dtype != own:
                model = copy.deepcopy(model)
            from ..calculator import MiniMACECalculator  # the model stage, only when a model is verified

            device = str(next(model.parameters()).device)
            self.calc, self.name = MiniMACECalculator(model, device=device, dtype=self.dtype), type(obj).__name__
        elif callable(obj):
            self.fn, self.name = obj, getattr(obj, "__name__", type(obj).__name__)
            self.dtype = dtype or "float64"
        else:
            raise TypeError(f"cannot verify a {type(obj).__name__}: expected an ASE calculator, a minimace model "
                            "or a function (positions, numbers, cell, pbc) -> energy[, forces[, stress]]")
        self.given_cutoff = None if cutoff is None else float(cutoff)
        self.has_stress = self.calc is None or "stress" in getattr(self.calc, "implemented_properties", ())

    @property
    def cutoff(self) -> Optional[float]:
        """The cutoff given, else read from the model or calculator (EMT's only after a first calculation)."""
        return self.given_cutoff if self.given_cutoff is not None else _read_cutoff(self.obj, self.calc)

    def __call__(self, atoms, stress: bool = False):
        self.evaluations += 1
        if self.calc is not None:
            a = atoms.copy()
            a.calc = self.calc
            energy = float(a.get_potential_energy())
            forces = np.array(a.get_forces(), dtype=np.float64)
            s = a.get_stress(voigt=False) if stress and self.has_stress else None
            return energy, forces, (None if s is None else np.array(s, dtype=np.float64))
        out = self.fn(atoms.get_positions(), atoms.get_atomic_numbers(), np.array(atoms.get_cell()),
                      atoms.get_pbc().copy())
        if isinstance(out, dict):
            energy, forces, s = out["energy"], out.get("forces"), out.get("stress")
        elif isinstance(out, (tuple, list)):
            energy, forces, s = (list(out) + [None, None])[:3]
        else:
            energy, forces, s = out, None, None
        forces = None if forces is None else _array(forces).reshape(len(atoms), 3)
        s = None if (s is None or not stress) else _stress_3x3(s)
        return float(_array(energy).reshape(())), forces, s


def _is_calculator(obj) -> bool:
    from ase.calculators.calculator import BaseCalculator

    return isinstance(obj, BaseCalculator) or (hasattr(obj, "get_potential_energy") and hasattr(obj, "calculate"))


def _is_torch_module(obj) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _as_minimace_model(module):
    if isinstance(getattr(module, "config", None), dict) and "r_max" in module.config:
        return module
    if type(module).__module__.split(".")[0] == "mace":
        from ..interop import from_mace_torch

        return from_mace_torch(module)
    raise TypeError(f"a {type(module).__name__} is neither a minimace model (with .config['r_max']) nor a mace-torch "
                    "model; wrap it in a function (positions, numbers, cell, pbc) -> (energy, forces, stress)")


def _read_cutoff(obj, calc) -> Optional[float]:
    """The cutoff radius of a minimace model, MiniMACECalculator, mace-torch's MACECalculator, ASE's LJ, or
    ASE's EMT (its neighbour-list radius ``rc_list``, known after a first calculation)."""
    for thing in (obj, calc):
        if thing is None:
            continue
        config = getattr(thing, "config", None)
        if isinstance(config, dict) and "r_max" in config:
            return float(config["r_max"])
        if isinstance(getattr(thing, "r_max", None), (int, float)):
            return float(thing.r_max)
        if isinstance(getattr(thing, "rc_list", None), (int, float)):
            return float(thing.rc_list)
        params = getattr(thing, "parameters", None)
        if type(thing).__name__ == "LennardJones" and params is not None:
            return float(params.get("rc") or 3 * params.get("sigma", 1.0))
    return None


def load_potential(spec: str, dtype=None):
    """``MODULE:FACTORY`` (or ``path/file.py:FACTORY``) → ``FACTORY()``; otherwise a model file: a minimace
    checkpoint (``best.pt``) or a mace-torch model (through ``minimace.interop``, which needs mace-torch)."""
    if ":" in spec and not os.path.exists(spec):
        module_name, factory = spec.rsplit(":", 1)
        if module_name.endswith(".py"):
            where = importlib.util.spec_from_file_location(os.path.basename(module_name)[:-3], module_name)
            if where is None or not os.path.exists(module_name):
                raise FileNotFoundError(f"--calculator {spec}: no file {module_name}")
            module = importlib.util.module_from_spec(where)
            where.loader.exec_module(module)
        else:
            try:
                module = importlib.import_module(module_name)
            except ImportError as err:
                raise ValueError(f"--calculator {spec}: cannot import {module_name} ({err})") from None
        if not hasattr(module, factory):
            raise ValueError(f"--calculator {spec}: module {module_name} has no {factory!r}")
        return getattr(module, factory)()
    if not os.path.exists(spec):
        raise FileNotFoundError(f"no model file {spec} (give a minimace checkpoint, a mace-torch model file, or "
                                "--calculator MODULE:FACTORY)")
    from ..checkpoint import CheckpointError, load_model

    try:
        return load_model(spec)
    except (CheckpointError, KeyError, TypeError, ValueError) as err:
        try:
            from ..interop import from_mace_torch_file

            return from_mace_torch_file(spec)
        except Exception as err2:  # noqa: BLE001 - both readers failed: say why for each
            raise ValueError(f"{spec} is neither a minimace checkpoint ({err}) nor a readable mace-torch model "
                             f"({type(err2).__name__}: {err2})") from None


# ---------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Context:
    pot: Potential
    atoms: object  # ase.Atoms (rattled)
    energy: float
    forces: Optional[np.ndarray]
    stress: Optional[np.ndarray]
    eps: float
    rng: np.random.Generator
    options: dict
    tolerance: float = 0.0  # of the check being run
    energy_noise: Optional[float] = None

    @property
    def noise(self) -> float:
        """Round-off (or convergence noise) of one energy, eV: given, else 4 ε (|E| + N · 1 eV) — the total can be
        a small difference of per-atom terms of a few eV (EMT's is)."""
        if self.energy_noise is not None:
            return self.energy_noise
        return 4 * self.eps * (abs(self.energy) + len(self.atoms))

    @property
    def periodic(self) -> bool:
        return bool(self.atoms.pbc.all())


def _scaled(observed, expected, kind: str) -> float:
    observed, expected = np.asarray(observed, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(observed - expected))) / max(float(np.max(np.abs(expected))), FLOOR[kind])


def _compare(ctx: _Context, atoms, forces_expected, stress_expected) -> tuple[float, dict]:
    use_stress = ctx.stress is not None
    e, f, s = ctx.pot(atoms, stress=use_stress)
    details = {"energy": _scaled(e, ctx.energy, "energy")}
    if ctx.forces is not None:
        details["forces"] = _scaled(f, forces_expected, "forces")
    if use_stress:
        details["stress"] = _scaled(s, stress_expected, "stress")
    return max(details.values()), details


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    import torch

    from ..so3 import random_rotation

    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    return random_rotation(dtype=torch.float64, generator=gen).numpy()


def _transformed(atoms, R: np.ndarray):
    a = atoms.copy()
    cell = np.array(atoms.get_cell()) @ R.T
    pbc = atoms.get_pbc().copy()
    if np.linalg.det(cell) < 0:  # a reflected cell is left-handed: list the same lattice in another order
        cell, pbc = cell[[1, 0, 2]], pbc[[1, 0, 2]]
    a.set_cell(cell, scale_atoms=False)
    a.set_pbc(pbc)
    a.positions = atoms.positions @ R.T
    return a


def check_rotation(ctx: _Context):
    R = _random_rotation(ctx.rng)
    S = None if ctx.stress is None else R @ ctx.stress @ R.T
    F = None if ctx.forces is None else ctx.forces @ R.T
    return (*_compare(ctx, _transformed(ctx.atoms, R), F, S), "")


def check_reflection(ctx: _Context):
    R = -_random_rotation(ctx.rng)  # improper: the inversion times a rotation
    S = None if ctx.stress is None else R @ ctx.stress @ R.T
    F = None if ctx.forces is None else ctx.forces @ R.T
    return (*_compare(ctx, _transformed(ctx.atoms, R), F, S), "")


def check_translation(ctx: _Context):
    t = ctx.rng.standard_normal(3)
    t *= 3.3 / np.linalg.norm(t)  # by 3.3 Å in a random direction (atoms leave a periodic cell: not wrapped)
    a = ctx.atoms.copy()
    a.positions = ctx.atoms.positions + t
    return (*_compare(ctx, a, ctx.forces, ctx.stress), "by 3.3 Å")


def check_permutation(ctx: _Context):
    n = len(ctx.atoms)
    perm = ctx.rng.permutation(n)
    while n > 1 and np.array_equal(perm, np.arange(n)):
        perm = ctx.rng.permutation(n)
    F = None if ctx.forces is None else ctx.forces[perm]
    return (*_compare(ctx, ctx.atoms[perm], F, ctx.stress), "")


GAUSS = np.polynomial.legendre.leggauss(4)  # nodes and weights on [-1, 1]


def _step(noise: float, scale: float, tolerance: float, largest: float) -> float:
    """The half-step h: small enough that a kink of a merely continuous force is rarely crossed, large enough
    that the round-off of E, ``noise / h``, stays below 1/30 of the tolerance (up to ``largest``)."""
    return min(30 * noise / (scale * tolerance), largest)


def _line_check(value_at: Callable, slope_at: Callable, h: float) -> tuple[float, float]:
    r"""Central difference :math:`[E(h) - E(-h)] / 2h` and the mean slope over :math:`[-h, h]` (Gauss–Legendre).

    The two are equal for any smooth E; comparing with the mean slope rather than the slope at 0 removes the
    O(h^2) error of the central difference, so h can be large and the round-off of E small."""
    difference = (value_at(h) - value_at(-h)) / (2 * h)
    nodes, weights = GAUSS
    mean_slope = 0.5 * sum(w * slope_at(h * x) for x, w in zip(nodes, weights))
    return difference, mean_slope


def check_forces_gradient(ctx: _Context):
    F, n = ctx.forces, len(ctx.atoms)
    norm = float(np.linalg.norm(F))
    scale = max(norm, FLOOR["forces"])
    directions = {"along F": F / norm if norm > FLOOR["forces"] else _unit(ctx.rng.standard_normal((n, 3))),
                  "random": _unit(ctx.rng.standard_normal((n, 3)))}
    one = np.zeros((n, 3))
    k = int(np.argmax(np.linalg.norm(F, axis=1)))
    one[k] = _unit(ctx.rng.standard_normal(3))
    directions[f"atom {k}"] = one
    noise = ctx.noise

    def moved(u, lam):
        a = ctx.atoms.copy()
        a.positions = ctx.atoms.positions + lam * u
        return a

    details, steps, expected = {}, [], 0.0
    for name, u in directions.items():
        # the step in λ: atoms move by λ·|u_a|, the largest of which stays within LENGTH
        h = _step(noise, scale, ctx.tolerance, 0.5 * LENGTH / float(np.linalg.norm(u, axis=1).max()))
        difference, mean_force = _line_check(lambda lam: ctx.pot(moved(u, lam))[0],
                                             lambda lam: float(np.sum(ctx.pot(moved(u, lam))[1] * u)), h)
        details[name] = abs(difference + mean_force) / scale
        steps.append(h)
        expected = max(expected, noise / (h * scale))
    info = "half-steps " + ", ".join(f"{h:.2g}" for h in steps) + " Å (E(x±h) vs Gauss–Legendre mean of -F·u)"
    return max(details.values()), details, info, 3 * expected


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def check_stress_strain(ctx: _Context):
    S, cell = ctx.stress, np.array(ctx.atoms.get_cell())
    V = abs(float(np.linalg.det(cell)))
    norm = float(np.linalg.norm(S))
    scale = max(norm, FLOOR["stress"])
    sym = lambda m: 0.5 * (m + m.T)  # noqa: E731
    random_strain = lambda: _unit(sym(ctx.rng.standard_normal((3, 3))))  # noqa: E731
    directions = {"along stress": sym(S) / norm if norm > FLOOR["stress"] else random_strain(),
                  "random": random_strain()}
    L = float(np.max(np.linalg.norm(cell, axis=1)))
    noise = ctx.noise
    h = _step(noise, V * scale, ctx.tolerance, 0.5 * LENGTH / L)

    def strained(e, lam):
        a = ctx.atoms.copy()
        a.set_cell(cell @ (np.eye(3) + lam * e), scale_atoms=True)
        return a

    details = {}
    for name, e in directions.items():
        # dE/dλ = V(λ) σ(λ) : (I + λe)^{-1} e  (the strain rate relative to the strained cell)
        def slope(lam, e=e):
            a = strained(e, lam)
            d = np.linalg.solve(np.eye(3) + lam * e, e)
            return a.get_volume() * float(np.sum(ctx.pot(a, stress=True)[2] * d))
        difference, mean_slope = _line_check(lambda lam: ctx.pot(strained(e, lam))[0], slope, h)
        details[name] = abs(difference - mean_slope) / (V * scale)
    info = f"strain half-step {h:.2g} (E(ε±h) vs Gauss–Legendre mean of Vσ:ε)"
    return max(details.values()), details, info, 3 * noise / (h * V * scale)


def _pair_at_cutoff(atoms, rc: float):
    """(i, j, unit vector i→j) of the pair whose distance is closest to rc, such that putting j at rc from i
    brings it no closer to another atom than 0.8 × the shortest distance of the structure."""
    n = len(atoms)
    D = atoms.get_all_distances(mic=bool(atoms.pbc.any()), vector=True)  # [n, n, 3]: r_j - r_i
    d = np.linalg.norm(D, axis=-1)
    shortest = d[~np.eye(n, dtype=bool)].min()
    order = np.argsort(np.abs(d - rc), axis=None)
    for flat in order:
        i, j = divmod(int(flat), n)
        if i == j:
            continue
        u = D[i, j] / d[i, j]
        trial = atoms.copy()
        trial.positions[j] = atoms.positions[i] + rc * u
        others = np.delete(trial.get_distances(j, range(n), mic=bool(atoms.pbc.any())), j)
        if others.min() >= 0.8 * shortest:
            return i, j, u
    raise ValueError(f"no atom can be put at the cutoff {rc} Å of another without a collision")


def check_cutoff_smoothness(ctx: _Context):
    rc = ctx.pot.cutoff
    spacing, half = ctx.options["cutoff_spacing"], ctx.options["cutoff_points"] // 2
    i, j, u = _pair_at_cutoff(ctx.atoms, rc)
    distances = rc + spacing * np.arange(-half, half + 1)
    E, F = [], []
    for r in distances:
        a = ctx.atoms.copy()
        a.positions[j] = ctx.atoms.positions[i] + r * u
        e, f, _ = ctx.pot(a)
        E.append(e)
        F.append(f)
    E = np.array(E)
    # third differences: ~ spacing^3 E''' for a smooth function, ~ the jump itself at a discontinuity
    details = {"energy": float(np.abs(np.diff(E, 3)).max()) / max(float(np.abs(E).max()), FLOOR["energy"])}
    if ctx.forces is not None:
        F = np.array(F)  # [points, n, 3]
        details["forces"] = float(np.abs(np.diff(F, 3, axis=0)).max()) / max(float(np.abs(F).max()), FLOOR["forces"])
    info = (f"atom {j} moved from {distances[0]:.4f} to {distances[-1]:.4f} Å of atom {i} "
            f"(cutoff {rc:g} Å, {len(distances)} points {spacing:g} Å apart)")
    return max(details.values()), details, info


def check_extensivity(ctx: _Context):
    from ase import Atoms

    atoms = ctx.atoms
    cell = np.array(atoms.get_cell())
    if atoms.pbc.any():
        axis = int(np.argmax(atoms.pbc))
        shift = cell[axis]
        big = cell.copy()
        big[axis] *= 2
        how = f"side by side along cell vector {axis}"
    else:
        gap = 2 * ctx.pot.cutoff + 5.0 if ctx.pot.cutoff else 20.0
        shift = np.array([np.ptp(atoms.positions[:, 0]) + gap, 0.0, 0.0])
        big = cell
        how = f"{gap:g} Å apart"
    other = atoms.copy()
    other.positions = atoms.positions + shift
    e_other = ctx.pot(other)[0]
    both = Atoms(numbers=np.concatenate([atoms.numbers, atoms.numbers]),
                 positions=np.concatenate([atoms.positions, other.positions]), cell=big, pbc=atoms.pbc)
    e_both = ctx.pot(both)[0]
    expected = ctx.energy + e_other
    return _scaled(e_both, expected, "energy"), {"energy": _scaled(e_both, expected, "energy")}, how


def _verlet(ctx: _Context, velocities: np.ndarray, dt: float, steps: int) -> float:
    """Largest |E_pot + E_kin - start| over a velocity-Verlet run (ASE units: Å, eV, amu)."""
    masses = ctx.atoms.get_masses()[:, None]
    a = ctx.atoms.copy()
    v, f, e = velocities.copy(), ctx.forces, ctx.energy
    start = e + 0.5 * float(np.sum(masses * v**2))
    worst = 0.0
    for _ in range(steps):
        v = v + 0.5 * dt * f / masses
        a.positions = a.positions + dt * v
        e, f, _ = ctx.pot(a)
        v = v + 0.5 * dt * f / masses
        worst = max(worst, abs(e + 0.5 * float(np.sum(masses * v**2)) - start))
    return worst


def check_nve_conservation(ctx: _Context):
    from ase import units
    from ase.md import velocitydistribution as vd

    a = ctx.atoms.copy()
    thermalize = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution  # ASE >= 3.29 / older
    thermalize(a, temperature_K=ctx.options["temperature"], rng=ctx.rng)
    vd.Stationary(a)
    v = a.get_velocities()
    dt_fs = ctx.options["dt"] or (0.5 if ctx.atoms.get_masses().min() < 4 else 1.0)
    steps = ctx.options["steps"]
    full = _verlet(ctx, v, dt_fs * units.fs, steps)
    half = _verlet(ctx, v, 0.5 * dt_fs * units.fs, 2 * steps)
    kinetic = 0.5 * float(np.sum(a.get_masses()[:, None] * v**2))
    noise = 8 * ctx.eps * (abs(ctx.energy) + kinetic + 1.0) * math.sqrt(2 * steps)
    details = {"drift dt": full, "drift dt/2": half}
    info = f"{steps} steps of {dt_fs:g} fs and {2 * steps} of {dt_fs / 2:g} fs at {ctx.options['temperature']:g} K"
    if full <= 50 * noise:
        return 0.0, details, info + "; energy conserved to round-off: no drift to scale"
    return half / full, details, info + " (ratio 1/4 expected)"


_CHECK_FUNCTIONS = {name: globals()[f"check_{name}"] for name in CHECKS}


def _not_applicable(name: str, ctx: _Context) -> Optional[str]:
    if name in ("forces_gradient", "nve_conservation") and ctx.forces is None:
        return "the potential returns no forces"
    if name == "stress_strain":
        if not ctx.periodic:
            return f"needs a periodic cell (pbc={ctx.atoms.pbc.tolist()})"
        if ctx.stress is None:
            return "the potential returns no stress"
    if name == "cutoff_smoothness" and ctx.pot.cutoff is None:
        return "the cutoff is unknown: pass cutoff= (--cutoff)"
    if name == "cutoff_smoothness" and len(ctx.atoms) < 2:
        return "needs at least two atoms"
    return None


# ---------------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------------
def verify(potential, atoms, checks=None, dtype=None, *, cutoff: Optional[float] = None, rattle: float = 0.02,
           seed: int = 0, tolerances: Optional[dict] = None, dt: Optional[float] = None, steps: int = 10,
           temperature: float = 300.0, cutoff_spacing: Optional[float] = None, cutoff_points: int = 21,
           energy_noise: Optional[float] = None) -> Report:
    r"""Check the symmetries and the physics of an interatomic potential on one structure.

    Parameters
    ----------
    potential : ASE calculator, minimace model, mace-torch model, or callable
        A callable is called as ``potential(positions [N, 3], numbers [N], cell [3, 3], pbc [3])`` (numpy) and
        returns the energy (eV), or ``(energy, forces [N, 3])``, or ``(energy, forces, stress)`` (stress
        3×3 or Voigt, eV/Å³, ASE's sign: :math:`\sigma = \frac1V \partial E/\partial\varepsilon`), or a dict
        with those keys. A minimace model is evaluated through ``MiniMACECalculator``.
    atoms : ase.Atoms
        The structure (molecule or periodic cell). It is copied and rattled by ``rattle`` Å (Gaussian,
        ``seed``) so that no symmetry of the structure hides an error.
    checks : sequence of str, optional
        Among :data:`CHECKS`; default: all that apply (``stress_strain`` needs a periodic cell and stress,
        ``cutoff_smoothness`` a cutoff). Asking for one that does not apply is an error.
    dtype : {"float64", "float32"}, optional
        Precision of the potential, which sets the tolerances (:data:`TOLERANCES`). Default: the dtype of a
        minimace/mace-torch model or calculator, else float64. A minimace model of another dtype is copied.
    cutoff : float, optional
        Cutoff radius (Å) for ``cutoff_smoothness``; read from minimace and mace-torch models and ASE's LJ.
    tolerances : dict, optional
        ``{check: tolerance}`` replacing the defaults (say why in your test).
    dt, steps, temperature : float, int, float
        NVE run: time step in fs (default 1, or 0.5 with hydrogen), steps at ``dt`` (and twice as many at
        ``dt/2``), initial Maxwell–Boltzmann temperature in K.
    cutoff_spacing, cutoff_points : float, int
        The scan of ``cutoff_smoothness``: points this far apart (Å) centred on the cutoff (default spacing
        1e-5 Å in float64, 1e-3 Å in float32, where positions are rounded to ~1e-6 Å).
    energy_noise : float, optional
        Noise of one energy evaluation in eV, which sets the finite-difference steps (default: the round-off
        4 ε (|E| + N · 1 eV) for N atoms). Give the convergence threshold of an iterative method (e.g. an SCF).

    Returns
    -------
    Report
        ``report.passed``; ``report["rotation"].error`` / ``.tolerance`` / ``.passed``; ``print(report)``;
        ``report.plot()``; ``report.to_json()``.
    """
    pot = potential if isinstance(potential, Potential) else Potential(potential, dtype, cutoff)
    unknown = [c for c in (checks or ()) if c not in CHECKS]
    if isinstance(checks, str) or unknown:
        raise ValueError(f"unknown check(s) {unknown or checks!r}: choose among {list(CHECKS)}")
    bad_tol = [c for c in (tolerances or {}) if c not in CHECKS]
    if bad_tol:
        raise ValueError(f"tolerances for unknown check(s) {bad_tol}: choose among {list(CHECKS)}")
    if len(atoms) == 0:
        raise ValueError("verify needs a structure with at least one atom")
    rng = np.random.default_rng(seed)
    work = atoms.copy()
    work.calc = None
    work.set_constraint()
    work.positions = work.positions + rattle * rng.standard_normal(work.positions.shape)
    start = time.process_time()
    energy, forces, stress = pot(work, stress=bool(work.pbc.all()))
    ctx = _Context(pot, work, energy, forces, stress, EPS[pot.dtype], rng,
                   dict(dt=dt, steps=steps, temperature=temperature,
                        cutoff_spacing=cutoff_spacing or CUTOFF_SPACING[pot.dtype],
                        cutoff_points=cutoff_points), energy_noise=energy_noise)
    report = Report(potential=pot.name, dtype=pot.dtype, n_atoms=len(work))
    for name in checks or CHECKS:
        why = _not_applicable(name, ctx)
        if why is not None:
            if checks:
                raise ValueError(f"check {name!r} does not apply: {why}")
            report.skipped[name] = why
            continue
        t0, n0 = time.process_time(), pot.evaluations
        tol = (tolerances or {}).get(name, TOLERANCES[name][pot.dtype])
        ctx.tolerance = tol
        error, details, info, *least = _CHECK_FUNCTIONS[name](ctx)
        if least and least[0] > tol and name not in (tolerances or {}):
            # the round-off of E limits what a finite difference can resolve: say so, and by how much
            info += (f"; tolerance raised from {tol:.0e} by the noise of E ({ctx.noise:.1e} eV: {pot.dtype}, "
                     f"|E| = {abs(energy):.3g} eV)")
            tol = float(least[0])
        report.results[name] = CheckResult(name, float(error), float(tol), details, info,
                                           time.process_time() - t0, pot.evaluations - n0)
    report.seconds = time.process_time() - start
    return report


def run_cli(args) -> int:
    """``minimace verify``: exit status 0 when every check passes, 1 when one fails (2: bad input, in cli.main)."""
    import ase.io

    expected = 1 if args.calculator else 2
    if len(args.paths) != expected:
        raise ValueError(f"expected {'STRUCTURE' if args.calculator else 'MODEL STRUCTURE'} "
                         f"{'(with --calculator)' if args.calculator else '(or --calculator MODULE:FACTORY STRUCTURE)'}"
                         f", got {len(args.paths)} path(s): {args.paths}")
    potential = load_potential(args.calculator or args.paths[0])
    structure = args.paths[-1]
    if not os.path.exists(structure):
        raise FileNotFoundError(f"no structure file {structure}")
    atoms = ase.io.read(structure, index=args.index)
    checks = [c.strip() for c in args.checks.split(",") if c.strip()] if args.checks else None
    report = verify(potential, atoms, checks=checks, dtype=args.dtype, cutoff=args.cutoff)
    print(report.to_json() if args.json else report.table())
    if args.plot:
        report.plot(args.plot)
    return 0 if report.passed else 1
