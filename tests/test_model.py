"""The whole MACE model: forces and stress by finite differences, batching, symmetries, dtypes, config.

(Exact agreement with mace-torch 0.3.16 is tested in tests/mace/test_interop_quick.py, in .venv-mace.)
"""

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from minimace.graph import atoms_to_graph, batch_graphs
from minimace.model import MACE
from minimace.testing import assert_model_equivariant

R_MAX = 3.5
DTYPES = [torch.float32, torch.float64]


def small_model(dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(r_max=R_MAX, num_bessel=6, num_polynomial_cutoff=5, max_ell=2, correlation=3, num_interactions=2,
                hidden_irreps="4x0e+4x1o", MLP_irreps="4x0e", radial_MLP=[8, 8], avg_num_neighbors=4.0,
                atomic_numbers=[1, 6, 8], atomic_energies=[-1.0, -3.0, -5.0], atomic_inter_scale=1.3,
                atomic_inter_shift=0.1)
    args.update(kw)
    return MACE(**args).to(dtype)


def ethanol(seed=0):
    a = molecule("CH3CH2OH")
    a.positions += 0.05 * np.random.default_rng(seed).standard_normal(a.positions.shape)
    return a


def periodic(seed=1):
    rng = np.random.default_rng(seed)
    cell = np.array([[4.2, 0.3, 0.0], [0.1, 3.9, 0.2], [0.0, -0.2, 4.4]])
    frac = rng.uniform(size=(5, 3))
    return Atoms(numbers=[8, 1, 1, 6, 1], scaled_positions=frac, cell=cell, pbc=True)


def graph(atoms, dtype=torch.float64):
    return batch_graphs([atoms_to_graph(atoms, R_MAX, dtype=dtype)])


def energy_at(model, atoms):
    return float(model(graph(atoms), compute_forces=False)["energy"][0].detach())


def fd_forces_error(model, atoms, forces, h=1e-4):
    """max |F - F_fd| over all coordinates (central differences)."""
    fd = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            fd[i, c] = -(energy_at(model, plus) - energy_at(model, minus)) / (2 * h)
    return np.abs(forces - fd).max(), np.abs(fd).max()


@pytest.mark.parametrize("atoms", [ethanol(), periodic()], ids=["molecule", "periodic"])
def test_forces_are_minus_the_gradient(atoms):
    model = small_model()
    forces = model(graph(atoms))["forces"].detach().numpy()
    err, scale = fd_forces_error(model, atoms, forces)
    assert scale > 1e-2 and err < 1e-7 * max(1.0, scale), (err, scale)
    # negative control: the checker rejects forces with the wrong sign convention
    err_bad, _ = fd_forces_error(model, atoms, -forces)
    assert err_bad > 1e-3


def test_stress_and_virials_are_strain_derivatives():
    model = small_model()
    atoms = periodic()
    out = model(graph(atoms), compute_stress=True)
    volume = atoms.get_volume()
    h = 1e-5
    virials_fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[a, b] += sign * h / 2
                eps[b, a] += sign * h / 2
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
                energies.append(energy_at(model, strained))
            virials_fd[a, b] = -(energies[0] - energies[1]) / (2 * h)
    virials = out["virials"][0].detach().numpy()
    assert np.abs(virials_fd).max() > 1e-2
    assert np.abs(virials - virials_fd).max() < 1e-7, (virials, virials_fd)
    np.testing.assert_allclose(out["stress"][0].detach().numpy(), -virials / volume, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(virials, virials.T, atol=1e-12)
    # molecules (no cell): zero stress, not NaN
    mol = model(graph(ethanol()), compute_stress=True)
    assert torch.all(mol["stress"] == 0)


def test_batch_equals_separate_evaluations():
    model = small_model()
    structures = [ethanol(), periodic(), molecule("H2O")]
    batch = batch_graphs([atoms_to_graph(a, R_MAX) for a in structures])
    out = model(batch, compute_stress=True)
    for k, a in enumerate(structures):
        single = model(graph(a), compute_stress=True)
        sl = slice(int(batch["ptr"][k]), int(batch["ptr"][k + 1]))
        torch.testing.assert_close(out["energy"][k : k + 1], single["energy"], atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(out["forces"][sl], single["forces"], atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(out["stress"][k : k + 1], single["stress"], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_is_equivariant(dtype):
    model = small_model(dtype)
    batch = batch_graphs([atoms_to_graph(a, R_MAX, dtype=dtype) for a in (ethanol(), periodic())])
    report = assert_model_equivariant(lambda b: model(b, compute_stress=True), batch)
    assert set(report.errors) == {"rotation", "reflection", "translation", "permutation"}


def test_equivariance_check_catches_a_chiral_model():
    """Negative control: a model whose energy depends on handedness (det of three edge vectors) fails."""
    model = small_model()
    batch = graph(ethanol())

    def chiral(b):
        out = model(b, compute_forces=False)
        v = b["positions"][1:4] - b["positions"][0]
        return {"energy": out["energy"] + 0.1 * torch.linalg.det(v)}

    with pytest.raises(AssertionError, match="reflection"):
        assert_model_equivariant(chiral, batch, tests=("reflection",))


def test_float32_matches_float64():
    m64 = small_model(torch.float64)
    m32 = small_model(torch.float32)
    m32.load_state_dict(m64.state_dict())
    m32 = m32.float()
    atoms = ethanol()
    out64, out32 = m64(graph(atoms)), m32(graph(atoms, torch.float32))
    assert out32["energy"].dtype == torch.float32 and out32["forces"].dtype == torch.float32
    torch.testing.assert_close(out32["energy"].double(), out64["energy"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out32["forces"].double(), out64["forces"], atol=1e-5, rtol=1e-4)
    # a model created in float32 and cast to float64 is as precise as one created in float64
    m = small_model(torch.float32).to(torch.float64)
    m.load_state_dict(m64.state_dict())
    torch.testing.assert_close(m(graph(atoms))["energy"], out64["energy"], atol=1e-12, rtol=1e-12)


def test_energy_is_smooth_at_the_cutoff():
    model = small_model()
    energies, forces = [], []
    for r in (R_MAX - 1e-4, R_MAX - 1e-7, R_MAX + 1e-7):
        atoms = Atoms("CO", positions=[[0, 0, 0], [r, 0, 0]])
        out = model(graph(atoms))
        energies.append(float(out["energy"][0].detach()))
        forces.append(float(out["forces"].abs().max()))
    assert abs(energies[1] - energies[2]) < 1e-12 and abs(energies[0] - energies[2]) < 1e-9
    assert forces[1] < 1e-12 and forces[2] == 0.0
    assert energies[2] == pytest.approx(-8.0 + 2 * 0.1, abs=1e-12)  # isolated atoms: E0 + shift


def test_unknown_element_names_atom_and_Z():
    model = small_model()
    atoms = molecule("CH3CH2OH")
    atoms.numbers[4] = 7
    with pytest.raises(ValueError, match=r"atom 4 .*Z=7"):
        model(graph(atoms))


def test_config_rebuilds_the_same_model():
    model = small_model(correlation=[2, 3], num_interactions=2)
    config = json.loads(json.dumps(model.config))
    clone = MACE(**config).double()
    clone.load_state_dict(model.state_dict())
    batch = graph(ethanol())
    torch.testing.assert_close(clone(batch)["energy"], model(batch)["energy"], atol=0, rtol=0)


@pytest.mark.parametrize("kw", [dict(num_interactions=1, hidden_irreps="4x0e"),
                                dict(num_interactions=3, hidden_irreps="3x0e+3x1o+3x2e", max_ell=3)])
def test_other_architectures_run_and_are_invariant(kw):
    model = small_model(**kw)
    batch = graph(ethanol())
    assert_model_equivariant(model, batch, tests=("rotation", "reflection"), n_trials=1)


def test_training_mode_forces_are_differentiable():
    model = small_model()
    out = model(graph(ethanol()), training=True)
    loss = out["forces"].pow(2).sum() + out["energy"].pow(2).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
