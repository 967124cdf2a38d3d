"""Reading labelled structures, E0s, statistics, splits and loaders (minimace.data)."""

import ase
import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from minimace.data import (
    Configuration,
    DataError,
    GraphDataset,
    KeySpec,
    average_num_neighbors,
    energy_shift_force_scale,
    fit_e0s,
    is_isolated_atom,
    isolated_atom_energies,
    make_loader,
    random_split,
    read_configurations,
    split_isolated_atoms,
    stress_to_virials,
    virials_to_stress,
)
from minimace.graph import batch_graphs


def write(tmp_path, text, name="bad.xyz"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_FRAME = """2
Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.5 pbc="F F F"
H 0.0 0.0 0.0 0.1 0.0 0.0
H 0.0 0.0 0.74 -0.1 0.0 0.0
"""


# ---------------------------------------------------------------------------------------------- real files


@pytest.mark.shared_data("solvent_xtb")
def test_solvent_xtb_keys_and_isolated_atoms(shared):
    path = shared / "solvent_xtb" / "solvent_xtb_train_20.xyz"
    configs = read_configurations(path, energy_key="energy_xtb", forces_key="forces_xtb")
    assert len(configs) == 23
    e0s, rest = split_isolated_atoms(configs)
    assert len(rest) == 18 and all(c.forces.shape == (len(c), 3) for c in rest)
    # values recorded in solvent_xtb/PROVENANCE.md (H and O appear twice in the file and agree)
    assert e0s == pytest.approx({1: -10.707211383, 6: -48.847445263, 8: -102.571172560}, abs=1e-8)
    with pytest.raises(DataError, match=r"frame 0 \(line 1\): no energy under key 'energy'.*energy_xtb"):
        read_configurations(path)  # default keys: the message lists what the frame has


@pytest.mark.shared_data("si_gap18_tiny")
def test_si_gap18_virials_and_stress(shared):
    configs = read_configurations(
        shared / "si_gap18_tiny" / "Si_tiny.xyz", energy_key="dft_energy", forces_key="dft_force", virials_key="dft_virial"
    )
    assert isolated_atom_energies(configs) == {14: pytest.approx(-158.54496821, abs=1e-8)}
    periodic = [c for c in configs if not is_isolated_atom(c)]
    assert len(periodic) == 52 and all(c.pbc.all() and c.virials.shape == (3, 3) for c in periodic)
    for c in periodic:
        np.testing.assert_allclose(c.virials, c.virials.T, atol=1e-6)
        s = virials_to_stress(c.virials, c.cell)
        np.testing.assert_allclose(stress_to_virials(s, c.cell), c.virials, rtol=1e-12)
        # sign: virials = -stress * volume
        np.testing.assert_allclose(s * abs(np.linalg.det(c.cell)), -c.virials, rtol=1e-12)
    # the labels are the dft_* values of the headers (read independently here)
    header = (shared / "si_gap18_tiny" / "Si_tiny.xyz").read_text().splitlines()[4]
    dft_energy = float(header.split("dft_energy=")[1].split()[0])
    assert periodic[0].energy == dft_energy


def test_stress_voigt_roundtrip_through_extxyz(tmp_path):
    atoms = bulk("Si", "diamond", a=5.43)
    stress = np.array([[1.0, 0.2, 0.3], [0.2, 2.0, 0.4], [0.3, 0.4, 3.0]]) * 1e-2
    atoms.calc = SinglePointCalculator(atoms, energy=-10.0, forces=np.zeros((2, 3)), stress=stress)
    ase.io.write(tmp_path / "s.xyz", atoms)
    (config,) = read_configurations(tmp_path / "s.xyz", required=("energy", "forces", "stress"))
    np.testing.assert_allclose(config.stress, stress, rtol=1e-12)
    graph = config.to_graph(3.0)
    torch.testing.assert_close(graph["stress"][0], torch.tensor(stress))


# ---------------------------------------------------------------------------------------------- records


def test_configuration_roundtrip_keeps_labels_and_weights():
    atoms = molecule("H2O")
    atoms.info.update(E=-3.0, config_type="water", config_weight=2.0, config_forces_weight=0.5)
    atoms.arrays["F"] = np.arange(9.0).reshape(3, 3)
    config = Configuration.from_atoms(atoms, KeySpec(energy_key="E", forces_key="F"))
    assert config.weights == {"energy_weight": 2.0, "forces_weight": 1.0}
    again = Configuration.from_atoms(config.to_atoms())
    assert again.energy == -3.0 and again.config_type == "water" and again.weights == config.weights
    np.testing.assert_array_equal(again.forces, atoms.arrays["F"])
    graph = config.to_graph(3.0, dtype=torch.float32)
    assert graph["energy"].dtype == torch.float32 and graph["forces_weight"].tolist() == [1.0]


# ---------------------------------------------------------------------------------------------- statistics


def synthetic(seed=0, n=30):
    """Random compositions of H/C/O with E = Σ E0_z + 0.1·N exactly."""
    rng = np.random.default_rng(seed)
    e0 = {1: -13.6, 6: -1025.3, 8: -2035.6}
    configs = []
    for _ in range(n):
        numbers = rng.choice([1, 6, 8], size=int(rng.integers(2, 9)))
        positions = rng.normal(size=(len(numbers), 3)) * 2
        forces = rng.normal(size=(len(numbers), 3))
        energy = sum(e0[int(z)] for z in numbers) + 0.1 * len(numbers)
        configs.append(Configuration(numbers, positions, np.zeros((3, 3)), np.zeros(3, bool), energy, forces))
    return configs, e0


def test_isolated_atom_recognition():
    atom = lambda **kw: Configuration(np.array([1]), np.zeros((1, 3)), np.eye(3) * 20, np.zeros(3, bool), -13.6, **kw)
    assert is_isolated_atom(atom())  # one atom, not periodic
    assert is_isolated_atom(atom(config_type="IsolatedAtom")) and is_isolated_atom(atom(config_type="isolated_atom"))
    crystal = atom()
    crystal.pbc = np.ones(3, bool)  # a one-atom periodic cell is a crystal unless tagged
    assert not is_isolated_atom(crystal)
    crystal.config_type = "isolated_atom"
    assert is_isolated_atom(crystal)
    assert isolated_atom_energies([atom(), atom()]) == {1: -13.6}  # repeated entries that agree
    other = atom(source="b.xyz, frame 3")
    other.energy = -13.0
    with pytest.raises(DataError, match="two different isolated-atom energies for Z=1: .* and b.xyz, frame 3"):
        isolated_atom_energies([atom(), other])


def test_fit_e0s_recovers_known_values():
    configs, e0 = synthetic()
    fitted = fit_e0s(configs)
    # E = Σ (E0_z + 0.1): least squares finds E0_z + 0.1 exactly (varied compositions: full rank)
    assert fitted == pytest.approx({z: v + 0.1 for z, v in e0.items()}, abs=1e-9)
    assert fitted[1] != pytest.approx(e0[1], abs=1e-3)  # negative control: the offset is visible


def test_energy_shift_and_force_scale():
    configs, e0 = synthetic()
    shift, scale = energy_shift_force_scale(configs, e0)
    assert shift == pytest.approx(0.1, abs=1e-12)
    forces = np.concatenate([c.forces for c in configs])
    assert scale == pytest.approx(np.sqrt(np.mean(forces**2)), rel=1e-12)
    with pytest.raises(DataError, match=r"no E0 for atomic numbers \[8\]"):
        energy_shift_force_scale(configs, {1: 0.0, 6: 0.0})


def test_average_num_neighbors_counts_pairs():
    configs, _ = synthetic(n=5)
    graphs = [c.to_graph(2.5) for c in configs]
    count = sum(
        int(np.sum((np.linalg.norm(c.positions[:, None] - c.positions[None], axis=-1) < 2.5))) - len(c) for c in configs
    )
    assert average_num_neighbors(graphs) == pytest.approx(count / sum(len(c) for c in configs))


def test_random_split_is_seeded_disjoint_and_complete():
    items = list(range(103))
    train, valid = random_split(items, (0.9, 0.1), seed=1)
    assert sorted(train + valid) == items and len(valid) == 10
    assert random_split(items, (0.9, 0.1), seed=1) == [train, valid]
    assert random_split(items, (0.9, 0.1), seed=2) != [train, valid]
    a, b, c = random_split(items, (50, 20, 5), seed=0)
    assert (len(a), len(b), len(c)) == (50, 20, 5) and not set(a) & set(b)
    with pytest.raises(DataError):
        random_split(items, (100, 10))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loader_yields_batches_of_precomputed_graphs(dtype):
    configs, _ = synthetic(n=7)
    dataset = GraphDataset(configs, r_max=3.0, dtype=dtype)
    batches = list(make_loader(dataset, batch_size=3))
    assert [int(b["ptr"].numel() - 1) for b in batches] == [3, 3, 1]
    expected = batch_graphs(dataset.graphs[:3])
    for key, value in expected.items():
        assert torch.equal(batches[0][key], value), key
    assert batches[0]["positions"].dtype == dtype
    shuffled = [b["energy"] for b in make_loader(dataset, batch_size=3, shuffle=True, seed=4)]
    assert sorted(torch.cat(shuffled).tolist()) == pytest.approx(sorted(c.energy for c in configs), rel=1e-6)
    again = [b["energy"] for b in make_loader(dataset, batch_size=3, shuffle=True, seed=4)]
    assert all(torch.equal(x, y) for x, y in zip(shuffled, again))


# ---------------------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    "text, match",
    [
        (GOOD_FRAME + "two\nheader\n", r"frame 1, line 5: expected the number of atoms, got 'two'"),
        (GOOD_FRAME + GOOD_FRAME[:-30], r"frame 1, line 5: truncated — the frame announces 2 atoms but the file ends after 1"),
        (GOOD_FRAME.replace("energy=-1.5", "energy=nan"), r"frame 0 \(line 1\): label 'energy' has a non-finite value"),
        (GOOD_FRAME.replace("energy=-1.5 ", ""), r"no energy under key 'energy'; the frame has .*forces"),
        (GOOD_FRAME.replace("0.0 0.0 0.74", "0.0 nan 0.74"), r"frame 0 \(line 1\): non-finite position of atom 1 \(y = nan\)"),
        (GOOD_FRAME.replace("forces:R:3", "forces:R:2").replace(" 0.1 0.0 0.0", " 0.1 0.0").replace(" -0.1 0.0 0.0", " -0.1 0.0"),
         r"'forces' must have shape \[2, 3\], got \[2, 2\]"),
        (GOOD_FRAME.replace("-0.1 0.0 0.0", "-0.1 0.0"), r"frame 0 \(line 1\): malformed frame .*line 4 \(atom 1\) has 6 columns"),
        (GOOD_FRAME.replace('pbc="F F F"', 'Lattice="1 0 0 0 1 0 0 0 0" pbc="T T T"'), r"frame 0 \(line 1\): singular periodic cell"),
        ('0\nenergy=1.0 pbc="F F F"\n', r"frame 0 \(line 1\): empty structure"),
        (GOOD_FRAME.replace("energy=-1.5", "energy=abc"), r"label 'energy' is not numeric"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=match) as info:
        read_configurations(path)
    assert str(path) in str(info.value)


def test_coincident_atoms_are_named_with_file_and_frame(tmp_path):
    path = write(tmp_path, GOOD_FRAME + GOOD_FRAME.replace("0.0 0.0 0.74", "0.0 0.0 0.0"))
    configs = read_configurations(path)  # cheap checks at read time, the neighbour list finds the pair
    with pytest.raises(DataError, match=r"bad.xyz, frame 1 \(line 5\): atoms 0 and 1 are at the same position"):
        GraphDataset(configs, r_max=3.0)


def test_missing_file_and_binary_garbage(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_configurations(tmp_path / "absent.xyz")
    (tmp_path / "bin.xyz").write_bytes(bytes(range(256)))
    with pytest.raises(DataError, match="not a text file"):
        read_configurations(tmp_path / "bin.xyz")
    (tmp_path / "x.traj").write_text("garbage")
    with pytest.raises(DataError, match="ASE cannot read it"):
        read_configurations(tmp_path / "x.traj")


def test_unlabelled_and_index(tmp_path):
    path = write(tmp_path, GOOD_FRAME * 3, "ok.xyz")
    assert len(read_configurations(path, index="1:")) == 2
    assert read_configurations(path, index=-1)[0].source.endswith("frame 2 (line 9)")
    no_labels = write(tmp_path, GOOD_FRAME.replace("energy=-1.5 ", "").replace(":forces:R:3", "").replace(" 0.1 0.0 0.0", "").replace(" -0.1 0.0 0.0", ""), "u.xyz")
    (config,) = read_configurations(no_labels, required=())
    assert config.energy is None and config.forces is None
