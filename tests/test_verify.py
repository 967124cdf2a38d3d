"""``minimace.testing.verify``: it passes correct potentials (ASE's EMT and Lennard-Jones, minimace models in
float64 and float32) and FAILS, naming the right check, for broken ones (one negative control per check).

The negative controls are one small pair potential (Morse with a smooth cutoff, forces and stress by autograd)
with one deliberate defect each; ``FAILS`` says which checks each defect must fail, and every other check must pass.
"""

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from minimace import MACE
from minimace.graph import neighbour_list
from minimace.testing import CHECKS, TOLERANCES, Report, VerificationError, verify

RC = 4.0


def toy_potential(defect=None):
    """A Morse pair potential of cutoff RC (C² envelope (1 - (r/RC)²)³) with at most one defect."""

    def potential(positions, numbers, cell, pbc):
        order = np.argsort(numbers, kind="stable")
        (i, j), S = neighbour_list(positions, cell, pbc, RC)
        pos = torch.tensor(positions, requires_grad=True)
        strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
        deform = torch.eye(3, dtype=torch.float64) + 0.5 * (strain + strain.T)
        p, c = pos @ deform, torch.tensor(np.array(cell), dtype=torch.float64) @ deform
        D = p[j] - p[i] + torch.tensor(S, dtype=torch.float64) @ c         # [pairs, 3], both orders
        r = D.norm(dim=1)
        z = torch.tensor(numbers, dtype=torch.float64)
        strength = 0.3 * torch.sqrt(z[i] * z[j]) / 50                         # eV, depends on the species
        fc = torch.ones_like(r) if defect == "hard cutoff" else (1 - (r / RC) ** 2) ** 3
        energy = 0.5 * (strength * (torch.exp(-3 * (r - 2.5)) - 2 * torch.exp(-1.5 * (r - 2.5))) * fc).sum()
        if defect == "x component":      # depends on the x component of bond vectors: not rotation invariant
            energy = energy + 0.05 * (fc * D[:, 0] ** 2).sum()
        if defect == "triple product":   # (V1 × V2)·V3 of three bond-vector sums: a pseudoscalar
            V = [torch.zeros(len(p), 3, dtype=torch.float64).index_add(0, torch.tensor(i), (fc * r**k)[:, None] * D)
                 for k in range(3)]
            energy = energy + (torch.cross(V[0], V[1], dim=1) * V[2]).sum()
        if defect == "absolute position":
            energy = energy + 1e-3 * (p**2).sum()
        if defect == "energy step":      # a switching function whose two pieces do not meet at 2.6 Å
            energy = energy + 0.5 * 0.05 * (r < 2.6).double().sum()
        if defect == "per atom":         # the energy per atom returned as the energy
            energy = energy / len(p)
        forces, dE = torch.autograd.grad(energy, (pos, strain))
        forces = -forces.numpy()
        volume = abs(np.linalg.det(cell)) if np.all(pbc) else 1.0
        stress = dE.numpy() / volume
        if defect == "forces × 1.01":
            forces = 1.01 * forces
        if defect == "stress × 1.01":
            stress = 1.01 * stress
        if defect == "sorted forces":    # sorts the atoms by species and forgets to put the forces back
            forces = forces[order]
        return energy.item(), forces, (stress if np.all(pbc) else None)

    potential.__name__ = f"morse ({defect or 'correct'})"
    return potential


def alloy(n=2):
    """A rattled-later fcc Cu-Au cell, atoms listed by species (Cu first) so 'sorted forces' is right on it."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(n)
    atoms.numbers[len(atoms) // 2:] = 79
    return atoms


# each defect: the checks it must fail (all others must pass). Why more than one where there are more:
FAILS = {
    None: set(),
    "x component": {"rotation", "reflection"},   # the reflections are -R for rotations R: they see it too
    "triple product": {"reflection"},
    "absolute position": {"translation"},
    "sorted forces": {"permutation"},
    "forces × 1.01": {"forces_gradient", "nve_conservation"},  # dynamics conserve K + 1.01 E, not K + E
    "stress × 1.01": {"stress_strain"},
    "hard cutoff": {"cutoff_smoothness"},
    "per atom": {"extensivity"},
    # a discontinuity away from the cutoff: only the MD run crosses it (finite-difference steps are ~1e-7 Å)
    "energy step": {"nve_conservation"},
}


@pytest.fixture(scope="module")
def alloy_reports():
    return {defect: verify(toy_potential(defect), alloy(), cutoff=RC) for defect in FAILS}


@pytest.mark.parametrize("defect", list(FAILS), ids=lambda d: str(d))
def test_each_defect_fails_exactly_its_checks(alloy_reports, defect):
    report = alloy_reports[defect]
    assert set(report.results) == set(CHECKS), report.skipped
    assert set(report.failed) == FAILS[defect], f"{defect}:\n{report}"
    assert report.passed == (defect is None)


def test_every_check_has_a_negative_control():
    assert set().union(*FAILS.values()) == set(CHECKS)


def test_errors_of_failures_are_far_from_their_tolerance(alloy_reports):
    """A defect is not caught by luck: its error exceeds the tolerance by a factor; a correct potential is far below."""
    for defect, checks in FAILS.items():
        for name in checks:
            r = alloy_reports[defect][name]
            assert r.error > (1.5 if name == "nve_conservation" else 10) * r.tolerance, (defect, name, r)
    margin = {"nve_conservation": 0.7, "forces_gradient": 0.1, "stress_strain": 0.1}  # steps aim at tolerance/30
    for r in alloy_reports[None]:
        assert r.error < margin.get(r.name, 0.01) * r.tolerance, r


def test_molecules_have_no_stress_check_and_still_catch_defects():
    ethanol = molecule("CH3CH2OH")
    good = verify(toy_potential(), ethanol, cutoff=RC)
    assert good.passed, good
    assert "stress_strain" in good.skipped and "stress_strain" not in good
    assert set(verify(toy_potential("triple product"), ethanol, cutoff=RC).failed) == {"reflection"}
    assert set(verify(toy_potential("per atom"), ethanol, cutoff=RC).failed) == {"extensivity"}


# --- real calculators ----------------------------------------------------------------------------------
def test_emt_passes_with_its_neighbour_list_cutoff():
    report = verify(EMT(), bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2))
    assert report.passed, report
    assert set(report.results) == set(CHECKS)          # EMT's cutoff (rc_list) is read after the first call
    assert "5.87" in report["cutoff_smoothness"].info


def test_lennard_jones_smooth_passes_and_the_shifted_one_has_a_force_jump():
    argon = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
    smooth = verify(LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True), argon)
    assert smooth.passed, smooth
    shifted = verify(LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0), argon)   # ASE's default: E shifted only
    assert shifted.failed == ["cutoff_smoothness"], shifted
    assert shifted["cutoff_smoothness"].details["energy"] < 1e-6 < shifted["cutoff_smoothness"].details["forces"]


def small_mace(dtype=torch.float64):
    torch.manual_seed(0)
    return MACE(r_max=4.0, max_ell=2, correlation=2, num_interactions=2, hidden_irreps="8x0e+8x1o",
                MLP_irreps="8x0e", radial_MLP=[16, 16], avg_num_neighbors=10.0, atomic_numbers=[1, 8, 14],
                atomic_energies=[-13.6, -2041.9, -150.0], atomic_inter_scale=20.0).to(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_minimace_model_passes(dtype):
    silicon = bulk("Si", "diamond", a=5.43, cubic=True)
    report = verify(small_mace(getattr(torch, dtype)), silicon)
    assert report.dtype == dtype and report.passed, report
    assert set(report.results) == set(CHECKS)          # the cutoff comes from model.config["r_max"]
    assert report["rotation"].tolerance == TOLERANCES["rotation"][dtype]
    fd = report["forces_gradient"]
    if fd.tolerance != TOLERANCES["forces_gradient"][dtype]:   # float32 with |E| ~ 10^3 eV: said, and why
        assert dtype == "float32" and "tolerance raised" in fd.info and fd.tolerance < 0.2, fd
    water = verify(small_mace(getattr(torch, dtype)), molecule("H2O"))
    assert water.passed, water


def test_a_float64_model_verified_as_float32_is_copied_not_changed():
    model = small_mace()
    report = verify(model, molecule("H2O"), checks=["rotation"], dtype="float32")
    assert report.dtype == "float32" and next(model.parameters()).dtype == torch.float64


# --- the report and the arguments ---------------------------------------------------------------------------
def test_report_table_json_and_plot(tmp_path):
    report = verify(toy_potential("triple product"), alloy(), cutoff=RC, checks=["rotation", "reflection"])
    assert isinstance(report, Report) and list(report.results) == ["rotation", "reflection"]
    text = str(report)
    assert "rotation" in text and "FAIL" in text and "reflection" in report.table()
    data = json.loads(report.to_json())
    assert data["passed"] is False and data["checks"]["reflection"]["passed"] is False
    assert data["checks"]["rotation"]["error"] == report["rotation"].error
    fig = report.plot(tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 5000
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["reflection", "rotation"]
    with pytest.raises(VerificationError, match="reflection"):
        report.assert_passed()
    with pytest.raises(KeyError, match="not asked for"):
        report["translation"]


def test_energy_only_function_skips_force_checks():
    def energy_only(positions, numbers, cell, pbc):
        d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        return float(np.exp(-d[np.triu_indices(len(d), 1)] ** 2).sum())   # no cutoff, but local

    report = verify(energy_only, molecule("CH4"))
    assert report.passed, report
    assert {"forces_gradient", "nve_conservation", "cutoff_smoothness"} <= set(report.skipped)
    assert "forces" not in report["rotation"].details


def test_energy_noise_sets_the_finite_difference_steps():
    """A calculator converged to 1e-6 eV (an SCF, say) needs larger steps; they are chosen and reported."""
    quiet = verify(toy_potential(), alloy(), cutoff=RC, checks=["forces_gradient"])
    noisy = verify(toy_potential(), alloy(), cutoff=RC, checks=["forces_gradient"], energy_noise=1e-6)
    step = lambda r: float(r["forces_gradient"].info.split()[1].rstrip(","))  # noqa: E731
    assert step(noisy) > 1e3 * step(quiet) and noisy.passed and quiet.passed
    assert set(verify(toy_potential("forces × 1.01"), alloy(), checks=["forces_gradient"],
                      energy_noise=1e-6).failed) == {"forces_gradient"}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown check"):
        verify(toy_potential(), alloy(), checks=["rotations"])
    with pytest.raises(ValueError, match="stress_strain.*periodic"):
        verify(toy_potential(), molecule("H2O"), checks=["stress_strain"])
    with pytest.raises(ValueError, match="cutoff is unknown"):
        verify(toy_potential(), alloy(), checks=["cutoff_smoothness"])
    with pytest.raises(TypeError, match="cannot verify"):
        verify(42, alloy())
    with pytest.raises(ValueError, match="dtype"):
        verify(toy_potential(), alloy(), dtype="float16")
    with pytest.raises(ValueError, match="at least one atom"):
        verify(toy_potential(), Atoms())


# --- the command line and the pytest plugin ---------------------------------------------------------------
FACTORIES = '''
from ase.calculators.lj import LennardJones
import sys
sys.path.insert(0, {tests!r})
from test_verify import toy_potential

def lj():
    return LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True)

def chiral():
    return toy_potential("triple product")
'''


def test_cli_verify(tmp_path, capsys):
    import ase.io

    from minimace.checkpoint import save_checkpoint
    from minimace.cli import main

    (tmp_path / "factories.py").write_text(FACTORIES.format(tests=str(__import__("pathlib").Path(__file__).parent)))
    ase.io.write(tmp_path / "argon.xyz", bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2))
    ase.io.write(tmp_path / "alloy.xyz", alloy())
    assert main(["verify", "--calculator", f"{tmp_path}/factories.py:lj", str(tmp_path / "argon.xyz")]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out and "nve_conservation" in out
    status = main(["verify", "--calculator", f"{tmp_path}/factories.py:chiral", str(tmp_path / "alloy.xyz"),
                   "--checks", "rotation,reflection", "--json", "--cutoff", "4"])
    assert status == 1
    data = json.loads(capsys.readouterr().out)
    assert list(data["checks"]) == ["rotation", "reflection"] and not data["checks"]["reflection"]["passed"]
    model = small_mace()
    save_checkpoint({"kind": "model", "model_config": model.config, "model_state": model.state_dict()},
                    tmp_path / "best.pt")
    ase.io.write(tmp_path / "water.xyz", molecule("H2O"))
    assert main(["verify", str(tmp_path / "best.pt"), str(tmp_path / "water.xyz"), "--checks",
                 "rotation,forces_gradient", "--plot", str(tmp_path / "r.png")]) == 0
    assert "forces_gradient" in capsys.readouterr().out and (tmp_path / "r.png").exists()
    assert main(["verify", str(tmp_path / "water.xyz")]) == 2                       # no model
    assert main(["verify", "--calculator", "no_such_module:f", str(tmp_path / "water.xyz")]) == 2
    assert "cannot import no_such_module" in capsys.readouterr().err


pytest_plugins = ["pytester"]


def test_pytest_plugin(pytester):
    pytester.makepyfile(test_potential='''
        from ase.build import bulk
        from ase.calculators.emt import EMT

        def test_emt(verify):
            report = verify(EMT(), bulk("Cu", "fcc", a=3.6, cubic=True), checks=["rotation", "reflection"])
            assert report["rotation"].error < 1e-10

        def test_broken(verify):
            class Broken(EMT):
                def calculate(self, *args, **kwargs):
                    super().calculate(*args, **kwargs)
                    self.results["forces"] = 1.01 * self.results["forces"]
            verify(Broken(), bulk("Cu", "fcc", a=3.6, cubic=True), checks=["forces_gradient"])
    ''')
    result = pytester.runpytest("-p", "minimace.testing.plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*potential failed verification*", "*forces_gradient*FAIL*"])
