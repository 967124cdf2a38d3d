"""Neighbour lists and batching (minimace.graph) against a brute-force reference."""

import itertools

import ase
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from minimace.graph import DataError, KeySpec, atoms_to_graph, batch_graphs, neighbour_list, to_device

DTYPES = [torch.float32, torch.float64]


def brute_force_edges(positions, cell, pbc, r_max):
    """O(N² · images) reference: every (i, j, S) with |r_j - r_i + S·cell| < r_max, S bounded by the cell heights."""
    positions, cell, pbc = np.asarray(positions), np.asarray(cell), np.asarray(pbc)
    ranges = []
    periodic = cell[pbc]
    if len(periodic):
        # positions can sit anywhere: bound |S_d| by (extent of the positions + r_max) / height of the cell along d
        reciprocal = np.linalg.pinv(periodic)  # [3, n_periodic]; fractional coordinates = r @ reciprocal
        frac = positions @ reciprocal
        span = np.ptp(frac, axis=0) if len(frac) else np.zeros(len(periodic))
        heights = 1.0 / np.linalg.norm(reciprocal, axis=0)
    k = 0
    for d in range(3):
        if pbc[d]:
            n = int(np.ceil(r_max / heights[k] + span[k])) + 1
            ranges.append(range(-n, n + 1))
            k += 1
        else:
            ranges.append(range(0, 1))
    edges = set()
    for shift in itertools.product(*ranges):
        s = np.array(shift) @ cell
        d = np.linalg.norm(positions[None, :, :] - positions[:, None, :] + s, axis=-1)  # [i, j]
        for i, j in zip(*np.nonzero(d < r_max)):
            if i == j and not any(shift):
                continue
            edges.add((int(i), int(j), shift))
    return edges


def edge_set(edge_index, unit_shifts):
    return {(int(i), int(j), tuple(int(x) for x in s)) for (i, j), s in zip(np.asarray(edge_index).T, np.asarray(unit_shifts))}


def random_cell(rng, kind):
    if kind == "tiny":  # much smaller than 2·r_max: many images
        return np.diag(rng.uniform(0.8, 1.6, 3)) + rng.normal(scale=0.2, size=(3, 3))
    if kind == "skewed":
        a = rng.uniform(2.5, 4.0)
        return np.array([[a, 0, 0], [0.9 * a, 0.5 * a, 0], [0.7 * a, 0.6 * a, 0.4 * a]])
    return np.diag(rng.uniform(3.0, 7.0, 3)) + rng.normal(scale=0.5, size=(3, 3))


@pytest.mark.parametrize("kind", ["tiny", "skewed", "generic"])
@pytest.mark.parametrize("seed", range(4))
def test_neighbour_list_matches_brute_force(kind, seed):
    rng = np.random.default_rng(seed)
    cell = random_cell(rng, kind)
    pbc = [True, True, True] if seed == 0 else list(rng.random(3) < 0.6)
    fractional = rng.random((int(rng.integers(1, 7)), 3))
    if seed == 3:  # atoms outside the cell (unwrapped MD coordinates)
        fractional = fractional * 5 - 2
    positions = fractional @ cell
    r_max = 3.0
    edge_index, unit_shifts = neighbour_list(positions, cell, pbc, r_max)
    assert edge_set(edge_index, unit_shifts) == brute_force_edges(positions, cell, pbc, r_max)
    assert edge_index.shape[1] == len(edge_set(edge_index, unit_shifts))  # no duplicates


def test_brute_force_reference_negative_control():
    """The comparison above must notice a neighbour list that drops the far images."""
    rng = np.random.default_rng(0)
    cell = random_cell(rng, "tiny")
    positions = rng.random((3, 3)) @ cell
    edge_index, unit_shifts = neighbour_list(positions, cell, [True] * 3, 3.0)
    keep = np.abs(unit_shifts).max(axis=1) <= 1  # a truncated list: only nearest images
    assert edge_set(edge_index[:, keep], unit_shifts[keep]) != brute_force_edges(positions, cell, [True] * 3, 3.0)


def test_single_atom_sees_its_own_images():
    atoms = ase.Atoms("H", positions=[[0, 0, 0]], cell=np.eye(3), pbc=True)
    g = atoms_to_graph(atoms, 1.5)
    # images at |S| < 1.5 in a unit cube: 6 faces + 12 edges (√2) = 18; 8 corners are at √3 > 1.5
    assert g["edge_index"].shape[1] == 18
    assert torch.all(g["edge_index"] == 0)


def test_mixed_pbc_slab():
    slab = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    slab.pbc = [True, True, False]
    slab.cell[2] = 0.0  # a slab with no third vector is fine
    e, s = neighbour_list(slab.positions, slab.cell.array, slab.pbc, 4.0)
    assert np.all(s[:, 2] == 0)
    assert edge_set(e, s) == brute_force_edges(slab.positions, slab.cell.array, slab.pbc, 4.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_vectors_convention(dtype):
    atoms = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    g = atoms_to_graph(atoms, 4.0, dtype=dtype)
    i, j = g["edge_index"]
    r_ij = g["positions"][j] - g["positions"][i] + g["shifts"]  # [E, 3]
    assert g["positions"].dtype == dtype and g["shifts"].dtype == dtype
    torch.testing.assert_close(g["shifts"], g["unit_shifts"] @ g["cell"][0])
    assert float(r_ij.norm(dim=1).max()) < 4.0
    assert float(r_ij.norm(dim=1).min()) > 1.0
    # the full list is symmetric: (i, j, S) ⇔ (j, i, -S)
    edges = edge_set(g["edge_index"], g["unit_shifts"])
    assert {(j, i, tuple(-x for x in s)) for i, j, s in edges} == edges


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotated_structure_has_rotated_edges(dtype):
    rng = np.random.default_rng(3)
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.1, seed=2)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ q.T, scale_atoms=True)
    g, g_rot = atoms_to_graph(atoms, 4.5, dtype=dtype), atoms_to_graph(rotated, 4.5, dtype=dtype)
    assert edge_set(g["edge_index"], g["unit_shifts"]) == edge_set(g_rot["edge_index"], g_rot["unit_shifts"])
    vec = lambda g: g["positions"][g["edge_index"][1]] - g["positions"][g["edge_index"][0]] + g["shifts"]
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(vec(g) @ torch.tensor(q.T, dtype=dtype), vec(g_rot), atol=tol, rtol=0)


def test_molecule_and_isolated_atoms():
    g = atoms_to_graph(molecule("CH3CH2OH"), 5.0)
    assert g["edge_index"].shape[1] == 9 * 8  # all pairs, ethanol is < 5 Å across
    assert not g["pbc"].any() and torch.all(g["unit_shifts"] == 0)
    far = ase.Atoms("HO", positions=[[0, 0, 0], [0, 0, 10.0]])
    g = atoms_to_graph(far, 5.0)  # no neighbours: valid, zero edges
    assert g["edge_index"].shape == (2, 0) and g["shifts"].shape == (0, 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_offsets(dtype):
    structures = [molecule("H2O"), bulk("Si", "diamond", a=5.43), ase.Atoms("H", positions=[[0, 0, 0]]), molecule("CH4")]
    structures[0].info["energy"] = -1.0
    structures[3].info["energy"] = -2.0
    structures[3].arrays["forces"] = np.ones((5, 3))
    graphs = [atoms_to_graph(a, 3.0, dtype=dtype) for a in structures]
    b = batch_graphs(graphs)
    sizes = [len(a) for a in structures]
    assert b["ptr"].tolist() == [0, 3, 5, 6, 11]
    assert b["batch"].tolist() == sum(([k] * n for k, n in enumerate(sizes)), [])
    assert b["cell"].shape == (4, 3, 3) and b["pbc"].shape == (4, 3)
    # every edge stays inside its graph and reproduces the per-graph vectors
    i, j = b["edge_index"]
    assert torch.equal(b["batch"][i], b["batch"][j])
    r_batch = b["positions"][j] - b["positions"][i] + b["shifts"]
    r_each = torch.cat([g["positions"][g["edge_index"][1]] - g["positions"][g["edge_index"][0]] + g["shifts"] for g in graphs])
    torch.testing.assert_close(r_batch, r_each, atol=0, rtol=0)
    # labels missing in some graphs: zeros with weight 0
    assert b["energy"].tolist() == [-1.0, 0.0, 0.0, -2.0] and b["energy_weight"].tolist() == [1, 0, 0, 1]
    assert b["forces"].shape == (11, 3) and b["forces"][6:].sum() == 15 and b["forces"][:6].abs().sum() == 0
    assert b["forces_weight"].tolist() == [0, 0, 0, 1]
    # batching batches is the same as batching all graphs
    b2 = batch_graphs([batch_graphs(graphs[:2]), batch_graphs(graphs[2:])])
    for key in b:
        assert torch.equal(b[key], b2[key]), key


def test_labels_and_keys():
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.info.update(dft_energy=-10.0, dft_virial=np.arange(9.0), config_weight=0.5)
    atoms.arrays["dft_force"] = np.zeros((2, 3))
    atoms.info["stress"] = np.array([1.0, 2, 3, 4, 5, 6])  # Voigt xx yy zz yz xz xy
    keys = KeySpec(energy_key="dft_energy", forces_key="dft_force", virials_key="dft_virial")
    g = atoms_to_graph(atoms, 3.0, keys=keys)
    assert g["energy"].tolist() == [-10.0] and g["energy_weight"].tolist() == [0.5]
    assert g["stress"][0].tolist() == [[1, 6, 5], [6, 2, 4], [5, 4, 3]]
    assert g["virials"][0].tolist() == np.arange(9.0).reshape(3, 3).tolist()
    assert "energy" not in atoms_to_graph(atoms, 3.0)  # default key "energy" absent → no label


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ase.Atoms(), "empty structure"),
        (lambda: ase.Atoms("H2", positions=[[0, 0, 0], [0, np.nan, 0]]), "atom 1"),
        (lambda: ase.Atoms("H3", positions=[[0, 0, 0], [1, 0, 0], [1, 0, 0]]), "atoms 1 and 2"),
        (lambda: ase.Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]], cell=np.diag([1.0, 1, 0]), pbc=True), "singular periodic cell"),
        (lambda: ase.Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]], cell=np.diag([2.0, 3, 3]), pbc=True), "periodic image"),
    ],
)
def test_bad_structures_raise_clear_errors(make, match):
    atoms = make()
    if match == "periodic image":  # atom 1 sits on the image of atom 0 one cell away
        atoms.positions[1] = [2.0, 0, 0]
    with pytest.raises(DataError, match=match):
        atoms_to_graph(atoms, 3.0)


@pytest.mark.parametrize(
    "info, arrays, match",
    [
        ({"energy": np.nan}, {}, "'energy' has a non-finite"),
        ({}, {"forces": np.zeros((3, 3))}, r"'forces' must have shape \[2, 3\]"),
        ({}, {"forces": np.array([[0, 0, 0], [0, np.inf, 0]])}, r"non-finite value \(inf\) at index \[1, 1\]"),
        ({"stress": np.zeros(4)}, {}, "6 \\(Voigt\\) or 9"),
    ],
)
def test_bad_labels_raise_clear_errors(info, arrays, match):
    atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]])
    atoms.info.update(info)
    if arrays:  # ASE refuses per-atom arrays of the wrong length; a calculator result takes anything
        atoms.calc = SinglePointCalculator(atoms, **arrays)
    with pytest.raises(DataError, match=match):
        atoms_to_graph(atoms, 3.0)


@pytest.mark.parametrize(
    "positions, cell, pbc, match",
    [
        # vesin's cell list overflows (SIGFPE, the process dies) for extents ≳ 1e5 r_max: refused before
        ([[0, 0, 0], [1e6, 0, 0]], np.zeros((3, 3)), False, "atoms spread over 1e\\+06 Å"),
        ([[0, 0, 0], [0, 0, 1e6]], np.eye(3) * 3, [True, True, False], "atoms spread over"),
        # a 0.01 Å cell would give millions of neighbours per atom
        ([[0, 0, 0]], np.eye(3) * 0.01, True, "too small for r_max = 1.0: about 4.19e\\+06 neighbours"),
    ],
)
def test_absurd_inputs_are_refused_before_the_library(positions, cell, pbc, match):
    with pytest.raises(DataError, match=match):
        neighbour_list(positions, cell, pbc, 1.0)


def test_size_guards_leave_real_systems_alone():
    silicon = bulk("Si", "diamond", a=5.43, cubic=True).repeat((3, 3, 3))  # 216 atoms, r_max 6 Å: fine
    edge_index, _ = neighbour_list(silicon.positions, silicon.cell.array, True, 6.0)
    assert edge_index.shape[1] > 0
    far = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 1000.0]])  # 1000 Å apart, still a valid input
    assert atoms_to_graph(far, 5.0)["edge_index"].shape == (2, 0)


def test_labels_come_from_stored_results_only():
    """A live calculator's results (e.g. a model's own predictions) are not labels; a single-point one's are."""
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = EMT()
    atoms.get_potential_energy()
    assert "energy" not in atoms_to_graph(atoms, 3.0)
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0)
    assert atoms_to_graph(atoms, 3.0)["energy"].tolist() == [-1.0]


def test_to_device_casts_floats_only():
    g = atoms_to_graph(molecule("H2O"), 3.0)
    h = to_device(g, "cpu", torch.float32)
    assert h["positions"].dtype == torch.float32 and h["edge_index"].dtype == torch.long and h["pbc"].dtype == torch.bool
    assert to_device(g, "cpu")["positions"].dtype == torch.float64
