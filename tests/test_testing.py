"""Tests of ``minimace.testing.assert_equivariant``: it passes on equivariant functions and FAILS on broken
ones (one negative control per symmetry: rotation, reflection/parity, translation, permutation)."""

import pytest
import torch

from minimace.so3 import Irreps, spherical_harmonics
from minimace.testing import (
    BATCH_ATOMS,
    BATCH_KINDS,
    EquivarianceReport,
    assert_equivariant,
    assert_model_equivariant,
    permutation_within_graphs,
    transform,
)

DTYPES = [torch.float32, torch.float64]


def _positions(n, dtype, seed=0):
    return torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).to(dtype)


# --- functions under test ---------------------------------------------------------------------------
def pair_model(pos, numbers, index_weights=False, absolute=False):
    """Energy of a smooth pair potential, per-atom energies, forces by autograd, a stress-like tensor."""
    pos = pos.detach().requires_grad_(True)
    r = pos[None, :, :] - pos[:, None, :]                        # [n, n, 3]: r_ij = r_j - r_i
    d2 = r.pow(2).sum(-1)
    eps = numbers.to(pos.dtype)[:, None] * numbers.to(pos.dtype)[None, :]
    pair = eps * torch.exp(-d2 / 4) * (1 - torch.eye(len(pos), dtype=pos.dtype))
    node = 0.5 * pair.sum(1)                                    # [n]
    if index_weights:  # broken: depends on the order of the atoms
        node = node * torch.arange(1, len(pos) + 1, dtype=pos.dtype)
    if absolute:  # broken: depends on the origin
        node = node + 0.1 * pos.pow(2).sum(-1)
    energy = node.sum()
    forces = -torch.autograd.grad(energy, pos, create_graph=False)[0]
    sigma = torch.einsum("ij,ija,ijb->ab", pair, r, r)          # [3, 3]: rank-2 tensor
    return {"energy": energy.detach(), "node_energy": node.detach(), "forces": forces, "sigma": sigma.detach()}


PAIR_KINDS = {"energy": "0e", "node_energy": "0e", "forces": "cartesian_vectors", "sigma": "cartesian_matrix"}
PAIR_ATOMS = {"energy": None, "node_energy": "atoms", "forces": "atoms", "sigma": None}


def _check_pair(fn, dtype, **kw):
    pos, numbers = _positions(6, dtype), torch.tensor([1, 6, 8, 1, 1, 6])
    return assert_equivariant(fn, (pos, numbers), ("cartesian_points", None), PAIR_KINDS,
                              atoms_in=("atoms", "atoms"), atoms_out=PAIR_ATOMS, **kw)


# --- positive checks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_passes_on_spherical_harmonics(dtype):
    v = _positions(10, dtype)
    report = assert_equivariant(lambda u: spherical_harmonics(4, u), (v,), ("1o",), Irreps.spherical_harmonics(4))
    assert isinstance(report, EquivarianceReport)
    assert set(report.errors) == {"rotation", "reflection"}  # no points: no translation; no atoms given
    assert report.max_error < (1e-5 if dtype == torch.float32 else 1e-13)
    assert "rotation" in str(report)
    # "cartesian_vectors" is the same action as "1o"
    assert_equivariant(lambda u: spherical_harmonics(2, u), (v,), "cartesian_vectors", "0e+1o+2e")


@pytest.mark.parametrize("dtype", DTYPES)
def test_passes_on_a_pair_potential_with_forces_and_rank2_tensor(dtype):
    report = _check_pair(pair_model, dtype)
    assert set(report.errors) == {"rotation", "reflection", "translation", "permutation"}
    assert report.max_error < (1e-4 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_passes_on_a_batched_model_dict(dtype):
    batch = _toy_batch(dtype)
    report = assert_model_equivariant(toy_batch_model, batch)
    assert set(report.errors) == {"rotation", "reflection", "translation", "permutation"}
    assert batch["positions"].dtype == dtype


# --- negative controls: each broken symmetry is caught by its own test ---------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_fails_on_rotation(dtype):
    v = _positions(10, dtype)
    flip = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0] + [1.0] * 4, dtype=dtype)
    with pytest.raises(AssertionError, match="FAIL rotation"):
        assert_equivariant(lambda u: spherical_harmonics(2, u) * flip, (v,), ("1o",), "0e+1o+2e")
    fixed = torch.tensor([0.3, -0.2, 0.9], dtype=dtype)  # a rank-2 tensor built with a fixed direction
    with pytest.raises(AssertionError, match="FAIL rotation"):
        assert_equivariant(lambda u: torch.einsum("na,b->ab", u, fixed), (v,), ("1o",), "cartesian_matrix")


@pytest.mark.parametrize("dtype", DTYPES)
def test_fails_on_parity(dtype):
    a, b = _positions(5, dtype, 1), _positions(5, dtype, 2)
    cross = lambda u, w: torch.cross(u, w, dim=-1)  # noqa: E731  a pseudovector: "1e", not "1o"
    report = assert_equivariant(cross, (a, b), ("1o", "1o"), "1e")
    assert report.errors["reflection"][0] < 1e-5
    with pytest.raises(AssertionError, match="FAIL reflection") as info:
        assert_equivariant(cross, (a, b), ("1o", "1o"), "1o")
    assert "ok   rotation" in str(info.value)  # rotations alone cannot see parity
    # a classic bug: the volume as a signed det(cell) flips the stress under reflections
    with pytest.raises(AssertionError, match="FAIL reflection") as info:
        assert_model_equivariant(lambda b: toy_batch_model(b, signed_volume=True), _toy_batch(dtype))
    assert "ok   rotation" in str(info.value)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fails_on_translation(dtype):
    with pytest.raises(AssertionError, match="FAIL translation") as info:
        _check_pair(lambda p, z: pair_model(p, z, absolute=True), dtype)
    assert "ok   rotation" in str(info.value) and "ok   permutation" in str(info.value)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fails_on_permutation(dtype):
    with pytest.raises(AssertionError, match="FAIL permutation") as info:
        _check_pair(lambda p, z: pair_model(p, z, index_weights=True), dtype)
    assert "ok   rotation" in str(info.value) and "ok   translation" in str(info.value)
    batch = _toy_batch(dtype)
    # the edge list must be relabelled with the atoms: without "atom_index" for edge_index it fails
    atoms_without_edges = {k: v for k, v in BATCH_ATOMS.items() if k != "edge_index"}
    with pytest.raises(AssertionError, match="FAIL permutation"):
        assert_equivariant(toy_batch_model, (batch,), (BATCH_KINDS,), {"energy": "0e", "forces": "1o"},
                           atoms_in=(atoms_without_edges,), atoms_out={"forces": "atoms"},
                           permutation=permutation_within_graphs(batch["ptr"]), tests=("permutation",))
    with pytest.raises(AssertionError, match="FAIL permutation"):
        assert_model_equivariant(lambda b: toy_batch_model(b, edges_by_position=True), batch)


# --- API details -----------------------------------------------------------------------------------------
def test_transform_kinds_and_errors():
    R = -torch.eye(3, dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64)
    t = torch.ones(3, dtype=torch.float64)
    assert torch.equal(transform("cartesian_points", x, R, t), -x + 1)
    assert torch.allclose(transform("1e", x, R), x, atol=1e-14, rtol=0)
    assert torch.allclose(transform("1o", x, R), -x, atol=1e-14, rtol=0)
    assert torch.equal(transform(None, x, R), x)
    m = torch.randn(3, 3, dtype=torch.float64)
    assert torch.allclose(transform("cartesian_matrix", m, R), m)
    with pytest.raises(ValueError, match="last axis"):
        transform("2x1o", x, R)
    with pytest.raises(ValueError):
        assert_equivariant(lambda u: u, (x,), ("1o", "1o"), "1o")
    with pytest.raises(ValueError, match="unknown test"):
        assert_equivariant(lambda u: u, (x,), ("1o",), "1o", tests=("boost",))


def test_permutation_within_graphs_keeps_graphs():
    ptr = torch.tensor([0, 3, 7, 8])
    perm = permutation_within_graphs(ptr)(8, torch.Generator().manual_seed(0))
    assert sorted(perm.tolist()) == list(range(8))
    assert set(perm[:3].tolist()) == {0, 1, 2} and set(perm[3:7].tolist()) == {3, 4, 5, 6} and perm[7] == 7


# --- a toy model on the batch dict of docs/ARCHITECTURE.md ------------------------------------------------
def _toy_batch(dtype):
    """Two graphs (3 and 4 atoms), all pairs as edges, a periodic-looking cell per graph."""
    g = torch.Generator().manual_seed(3)
    sizes = [3, 4]
    ptr = torch.tensor([0, 3, 7])
    edges = [(a + i, a + j) for a, n in zip([0, 3], sizes) for i in range(n) for j in range(n) if i != j]
    edge_index = torch.tensor(edges).T
    unit_shifts = torch.randint(-1, 2, (edge_index.shape[1], 3), generator=g).to(torch.float64)
    cell = 4 * torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(2, 3, 3, dtype=torch.float64, generator=g)
    batch = torch.tensor([0] * 3 + [1] * 4)
    shifts = torch.einsum("ea,eab->eb", unit_shifts, cell[batch[edge_index[0]]])
    return {
        "positions": (2 * torch.randn(7, 3, dtype=torch.float64, generator=g)).to(dtype),
        "atomic_numbers": torch.tensor([1, 8, 1, 6, 1, 1, 8]),
        "edge_index": edge_index,
        "shifts": shifts.to(dtype),
        "unit_shifts": unit_shifts.to(dtype),
        "cell": cell.to(dtype),
        "pbc": torch.ones(2, 3, dtype=torch.bool),
        "batch": batch,
        "ptr": ptr,
    }


def toy_batch_model(b, edges_by_position=False, signed_volume=False):
    """E = Σ_edges Z_i Z_j exp(-|r_ij|²/8); forces and virials by autograd through the edge vectors."""
    pos = b["positions"].detach().requires_grad_(True)
    i, j = b["edge_index"]
    if edges_by_position:  # broken: pairs atoms by their place in the list, not by the edge list
        i, j = torch.arange(len(i)) % len(pos), (torch.arange(len(j)) + 1) % len(pos)
    vec = pos[j] - pos[i] + b["shifts"]                                  # [E, 3]
    z = b["atomic_numbers"].to(pos.dtype)
    e_edge = z[i] * z[j] * torch.exp(-vec.pow(2).sum(-1) / 8)           # [E]
    node = torch.zeros(len(pos), dtype=pos.dtype).index_add(0, i, 0.5 * e_edge)
    energy = torch.zeros(len(b["ptr"]) - 1, dtype=pos.dtype).index_add(0, b["batch"], node)
    d_pos, d_vec = torch.autograd.grad(energy.sum(), (pos, vec))
    graph_of_edge = b["batch"][i]
    virials = -torch.zeros(len(energy), 3, 3, dtype=pos.dtype).index_add(
        0, graph_of_edge, torch.einsum("ea,eb->eab", vec, d_vec))
    volume = torch.det(b["cell"]) if signed_volume else torch.det(b["cell"]).abs()  # broken if signed
    stress = -virials / volume[:, None, None]
    return {"energy": energy.detach(), "node_energy": node.detach(), "forces": -d_pos,
            "stress": stress.detach(), "virials": virials.detach()}
