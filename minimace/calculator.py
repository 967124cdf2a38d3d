"""An ASE calculator for minimace models: energy, free energy, forces, and stress for periodic cells.

Forces are ``F = -∂E/∂r`` and the stress ``σ = (1/V) ∂E/∂ε`` (ASE's sign; ``σ = -virials / V``), both
obtained by automatic differentiation inside the model, of the energy E = Σ_i E_i of the site energies of MACE
Eq. 13 (arXiv:2206.07697 v2). Stress is available for fully periodic cells only.

:func:`run_nve` runs constant-energy molecular dynamics with ASE's velocity Verlet on any calculator and records
the energies (notebook 10); with forces that are the exact gradient of the energy, the total energy is
conserved up to fluctuations of order Δt².
"""

from __future__ import annotations

import os

import numpy as np
from ase import units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from .graph import atoms_to_graph, to_device
from .train import resolve_device, resolve_dtype

# label keys atoms_to_graph would otherwise read from the atoms (or from this calculator's own results)
_LABEL_KEYS = ("energy", "forces", "stress", "virials", "energy_weight", "forces_weight", "stress_weight",
               "virials_weight")


def _voigt(s: np.ndarray) -> np.ndarray:
    """3x3 → ASE's Voigt order (xx, yy, zz, yz, xz, xy)."""
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


class MiniMACECalculator(Calculator):
    """ASE calculator around a ``minimace.MACE`` model (or the path of a model/checkpoint file).

    Parameters
    ----------
    model : torch.nn.Module or path-like
        A model with ``.config["r_max"]``, or a file written by ``minimace train`` (``best.pt``,
        ``checkpoint.pt``; EMA weights are used).
    device : str
        "cpu", "cuda", or "auto" (CUDA when available).
    dtype : {"float64", "float32"}
        Precision of the evaluation (float64 for finite-difference checks and MD, float32 for speed).

    Examples
    --------
    >>> atoms.calc = MiniMACECalculator("runs/demo/best.pt")  # doctest: +SKIP
    >>> atoms.get_potential_energy(), atoms.get_forces()      # doctest: +SKIP
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model, device: str = "cpu", dtype: str = "float64", **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            from .checkpoint import load_model

            model = load_model(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.r_max = float(self.model.config["r_max"])

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties
        if want_stress and not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress is defined for fully periodic cells only "
                                              f"(pbc={self.atoms.pbc.tolist()})")
        graph = atoms_to_graph(self.atoms, self.r_max, dtype=self.dtype)
        for key in _LABEL_KEYS:
            graph.pop(key, None)
        batch = to_device(graph, self.device, self.dtype)
        out = self.model(batch, compute_forces=True, compute_stress=want_stress, training=False)
        energy = out["energy"].detach().cpu().item()
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].detach().cpu().numpy().astype(np.float64),  # [N, 3]
        }
        if "node_energy" in out:
            self.results["energies"] = out["node_energy"].detach().cpu().numpy().astype(np.float64)  # [N]
        if want_stress:
            self.results["stress"] = _voigt(out["stress"].detach().cpu().numpy()[0].astype(np.float64))


def run_nve(atoms, timestep_fs: float, n_steps: int, temperature_K: float | None = None, seed: int = 0,
            interval: int = 1) -> dict:
    """Velocity-Verlet NVE run of ``atoms`` (its calculator attached) with ASE; energies every ``interval`` steps.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure, with ``atoms.calc`` set; it is moved in place.
    timestep_fs : float
        Time step Δt (fs).
    n_steps : int
        Number of steps.
    temperature_K : float, optional
        When given, momenta are first drawn from the Maxwell–Boltzmann distribution at this temperature
        (random generator seeded with ``seed``), without centre-of-mass motion or rotation.
    interval : int
        Record every ``interval`` steps (the start included).

    Returns
    -------
    dict
        ``time`` (fs), ``potential``, ``kinetic``, ``total`` (eV), arrays of one value per record, and
        ``positions`` [n_records, n_atoms, 3] (Å).
    """
    if temperature_K is not None:
        thermalize_momenta(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
        Stationary(atoms)
        ZeroRotation(atoms)
    records = {"time": [], "potential": [], "kinetic": [], "positions": []}
    dyn = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)

    def record():
        records["time"].append(dyn.nsteps * timestep_fs)
        records["potential"].append(atoms.get_potential_energy())
        records["kinetic"].append(atoms.get_kinetic_energy())
        records["positions"].append(atoms.get_positions())

    dyn.attach(record, interval=interval)
    dyn.run(n_steps)
    out = {key: np.asarray(value) for key, value in records.items()}
    out["total"] = out["potential"] + out["kinetic"]
    return out
