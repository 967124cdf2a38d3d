"""The ASE calculator: finite differences through ASE, stress of periodic cells, MD, files, memory."""

import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_train as t  # noqa: E402

from minimace.calculator import MiniMACECalculator, run_nve  # noqa: E402
from minimace.checkpoint import save_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return t.tiny_model(seed=3, atomic_inter_scale=2.0)


def _ethanol(seed=0):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.1, seed=seed)
    return atoms


def _water_box(seed=0):
    """A periodic, slightly sheared box of 3 water molecules (9 atoms)."""
    rng = np.random.default_rng(seed)
    cell = np.array([[4.2, 0.0, 0.0], [0.4, 4.0, 0.0], [0.2, -0.3, 4.4]])
    atoms = Atoms(pbc=True, cell=cell)
    for k in range(3):
        w = molecule("H2O")
        w.rotate(rng.uniform(0, 360), rng.normal(size=3))
        w.translate(cell.T @ np.array([0.2 + 0.3 * k, 0.3 * k + 0.1, 0.25 * k + 0.2]))
        atoms += w
    atoms.rattle(0.05, seed=seed)
    return atoms


class _SignFlipped(MiniMACECalculator):
    """Negative control: forces and stress with the wrong sign."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["forces"] = -self.results["forces"]
        if "stress" in self.results:
            self.results["stress"] = -self.results["stress"]


def _force_fd_error(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    return np.abs(calculate_numerical_forces(atoms, eps=1e-4) - atoms.get_forces()).max()


def _stress_fd_error(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    return np.abs(calculate_numerical_stress(atoms, eps=1e-5) - atoms.get_stress()).max()


def test_forces_match_finite_differences(model):
    calc = MiniMACECalculator(model, dtype="float64")
    atoms = _ethanol()
    assert _force_fd_error(calc, atoms) < 1e-7
    assert np.abs(calc.get_forces(atoms)).max() > 1e-2  # not trivially zero
    assert _force_fd_error(_SignFlipped(model, dtype="float64"), atoms) > 1e-2  # negative control


def test_stress_of_a_periodic_cell_matches_finite_differences(model):
    calc = MiniMACECalculator(model, dtype="float64")
    box = _water_box()
    assert _force_fd_error(calc, box) < 1e-7
    assert _stress_fd_error(calc, box) < 1e-7
    assert np.abs(calc.get_stress(box)).max() > 1e-4
    assert _stress_fd_error(_SignFlipped(model, dtype="float64"), box) > 1e-4  # negative control
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        calc.get_stress(_ethanol())


def test_energy_properties_and_float32(model):
    a64 = _ethanol()
    a64.calc = MiniMACECalculator(model, dtype="float64")
    e64, f64 = a64.get_potential_energy(), a64.get_forces()
    assert a64.get_potential_energy(force_consistent=True) == e64  # free_energy
    np.testing.assert_allclose(a64.calc.results["energies"].sum(), e64, rtol=1e-12)
    a32 = _ethanol()
    a32.calc = MiniMACECalculator(t.tiny_model(seed=3, atomic_inter_scale=2.0), dtype="float32")
    assert abs(a32.get_potential_energy() - e64) / abs(e64) < 1e-6
    np.testing.assert_allclose(a32.get_forces(), f64, atol=1e-3 * np.abs(f64).max())


def test_from_model_file(model, tmp_path):
    save_checkpoint({"kind": "model", "model_config": model.config, "model_state": model.state_dict()},
                    tmp_path / "best.pt")
    a, b = _ethanol(), _ethanol()
    a.calc = MiniMACECalculator(model)
    b.calc = MiniMACECalculator(tmp_path / "best.pt")
    assert a.get_potential_energy() == b.get_potential_energy()
    np.testing.assert_array_equal(a.get_forces(), b.get_forces())


def _md_drift(calc, steps=60):
    atoms = _ethanol(seed=2)
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    e0 = atoms.get_total_energy()
    VelocityVerlet(atoms, timestep=0.25 * units.fs).run(steps)
    return abs(atoms.get_total_energy() - e0), atoms


def test_short_md_conserves_energy(model):
    drift, atoms = _md_drift(MiniMACECalculator(model))
    assert drift < 2e-3, drift
    assert np.isfinite(atoms.positions).all()
    broken, _ = _md_drift(_SignFlipped(model))  # negative control: wrong forces do not conserve energy
    assert broken > 10 * drift


def test_run_nve_fluctuations_scale_as_dt_squared(model):
    """Velocity Verlet: halving Δt divides the energy fluctuation by about 4; wrong forces break conservation."""
    spread = {}
    for dt in (0.5, 0.25):
        atoms = _ethanol(seed=1)
        atoms.calc = MiniMACECalculator(model)
        run = run_nve(atoms, dt, int(round(10 / dt)), temperature_K=300, seed=0)
        assert run["time"][-1] == pytest.approx(10.0) and run["positions"].shape == (len(run["time"]), 9, 3)
        assert np.allclose(run["total"], run["potential"] + run["kinetic"])
        spread[dt] = np.ptp(run["total"])
    assert 2.5 < spread[0.5] / spread[0.25] < 6, spread
    atoms = _ethanol(seed=1)
    atoms.calc = _SignFlipped(model)
    broken = run_nve(atoms, 0.25, 40, temperature_K=300, seed=0)
    assert np.ptp(broken["total"]) > 10 * spread[0.25]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RSS is read from /proc (Linux)")
def test_many_structures_without_memory_growth(model):
    calc = MiniMACECalculator(model)
    names = ["H2O", "CH3OH", "CH3CH2OH", "CH4", "C2H6", "H2CO"]
    rss = []
    for k in range(300):
        atoms = molecule(names[k % len(names)])
        atoms.rattle(0.05, seed=k)
        atoms.calc = calc
        atoms.get_potential_energy()
        atoms.get_forces()
        if k in (50, 299):
            rss.append(_rss_mb())
    assert rss[1] - rss[0] < 15, f"RSS grew from {rss[0]:.1f} MB to {rss[1]:.1f} MB over 250 structures"
