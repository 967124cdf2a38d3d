"""Property-based fuzzing of the input path: structure → graph, and file → configurations.

Whatever the input, the outcome is either a valid result (finite, consistent) or our one clear exception
type ``DataError`` — never another exception from deep inside a library, never a silent NaN.
"""

import ase
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minimace.data import DataError, read_configurations
from minimace.graph import atoms_to_graph

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

coordinate = st.one_of(
    st.floats(-6.0, 6.0, allow_nan=False),
    st.sampled_from([0.0, 1.0, np.nan, np.inf, -np.inf, 1e6]),
)


@st.composite
def structures(draw):
    n = draw(st.integers(0, 6))
    positions = np.array(draw(st.lists(st.tuples(coordinate, coordinate, coordinate), min_size=n, max_size=n)), dtype=float).reshape(n, 3)
    if n >= 2 and draw(st.booleans()):
        positions[1] = positions[0]  # coincident atoms
    cell = np.array(draw(st.lists(st.floats(-4.0, 4.0, allow_nan=False), min_size=9, max_size=9))).reshape(3, 3)
    if draw(st.booleans()):
        cell[2] = cell[0] * draw(st.sampled_from([0.0, 1.0, 2.0]))  # singular
    pbc = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    numbers = draw(st.lists(st.integers(1, 10), min_size=n, max_size=n))
    return ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)


@SETTINGS
@given(atoms=structures(), r_max=st.floats(0.5, 3.0))
def test_structure_to_graph_is_valid_or_clear_error(atoms, r_max):
    try:
        graph = atoms_to_graph(atoms, r_max)
    except DataError as error:
        assert str(error)
        return
    i, j = graph["edge_index"]
    vectors = graph["positions"][j] - graph["positions"][i] + graph["shifts"]  # [E, 3]
    assert torch.isfinite(graph["positions"]).all() and torch.isfinite(vectors).all()
    lengths = vectors.norm(dim=1)
    assert bool((lengths < r_max + 1e-9).all()) and bool((lengths > 1e-6).all())
    # no pair lost or invented: the brute-force count of pairs within r_max agrees for molecules
    if not atoms.pbc.any():
        d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
        assert graph["edge_index"].shape[1] == int(np.sum(d < r_max)) - len(atoms)


def test_fuzz_checker_negative_control():
    """The property above must catch a graph with a NaN sneaking in."""
    atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]])
    graph = atoms_to_graph(atoms, 2.0)
    graph["shifts"][0, 0] = float("nan")
    vectors = graph["positions"][graph["edge_index"][1]] - graph["positions"][graph["edge_index"][0]] + graph["shifts"]
    assert not torch.isfinite(vectors).all()


VALID = """3
Lattice="5.0 0.0 0.0 0.0 5.0 0.0 0.0 0.0 5.0" Properties=species:S:1:pos:R:3:forces:R:3 energy=-14.2 pbc="T T F"
O 0.0 0.0 0.12 0.1 0.2 0.3
H 0.0 0.76 -0.47 -0.1 0.0 0.0
H 0.0 -0.76 -0.47 0.0 -0.2 -0.3
2
Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.5 pbc="F F F"
H 0.0 0.0 0.0 0.1 0.0 0.0
H 0.0 0.0 0.74 -0.1 0.0 0.0
"""


def check_file(tmp_path, data: bytes):
    path = tmp_path / "fuzz.xyz"
    path.write_bytes(data)
    try:
        configs = read_configurations(path)
        graphs = [c.to_graph(2.0) for c in configs]
    except DataError as error:
        assert str(path) in str(error)
        return
    for config, graph in zip(configs, graphs):
        assert np.isfinite(config.positions).all() and np.isfinite(config.energy) and np.isfinite(config.forces).all()
        assert all(torch.isfinite(v).all() for v in graph.values() if v.is_floating_point())


@SETTINGS
@given(cut=st.integers(0, len(VALID)))
def test_truncated_files(tmp_path, cut):
    check_file(tmp_path, VALID[:cut].encode())


@SETTINGS
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.sampled_from(list(" \n0123456789.-=:\"eEnaTFHOxyz"))), min_size=1, max_size=6))
def test_mutated_files(tmp_path, edits):
    text = list(VALID)
    for position, char in edits:
        text[position] = char
    check_file(tmp_path, "".join(text).encode())


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_garbage(tmp_path, data):
    check_file(tmp_path, data)


@pytest.mark.parametrize("data", [VALID.encode(), VALID.replace("energy=-1.5", "energy=inf").encode()])
def test_file_checker_controls(tmp_path, data):
    """A valid file passes through; a planted inf must be rejected by the reader (not slip into the checks)."""
    path = tmp_path / "control.xyz"
    path.write_bytes(data)
    if b"inf" in data:
        with pytest.raises(DataError, match="non-finite"):
            read_configurations(path)
    else:
        assert len(read_configurations(path)) == 2
