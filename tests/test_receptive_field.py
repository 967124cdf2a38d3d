"""Receptive field (the MACE paper's argument in its text; figures/mpnn_ace.png): T layers of cutoff r_c reach
T hops of the graph; ACE its cutoff.

The sensitivity S[i, k] = |∂E_i/∂r_k| of site energies to positions is computed by autograd. For a T-layer MACE it
must be non-zero exactly for the atoms k within T hops of i on the graph of cutoff r_c; for a linear ACE exactly
for the atoms within its cutoff of i. A deliberately non-local energy (negative control) must fail the check.
"""

import numpy as np
import pytest
import torch

from minimace.ace import ACEBasis
from minimace.figures import chain_atoms, receptive_field_experiment
from minimace.graph import atoms_to_graph
from minimace.model import MACE

DTYPES = [torch.float32, torch.float64]
R_C = 3.0


def small_mace(T, dtype, seed=0):
    torch.manual_seed(seed)
    return MACE(r_max=R_C, num_bessel=6, max_ell=2, correlation=2, num_interactions=T, hidden_irreps="8x0e+8x1o",
                MLP_irreps="4x0e", radial_MLP=[16], atomic_numbers=[1, 6, 8]).to(dtype)


def hops(edge_index, n):
    """Graph distance (number of edges) between every pair of atoms; inf when not connected."""
    D = np.full((n, n), np.inf)
    np.fill_diagonal(D, 0)
    D[edge_index[0].numpy(), edge_index[1].numpy()] = 1
    for m in range(n):  # Floyd–Warshall
        D = np.minimum(D, D[:, m : m + 1] + D[m : m + 1, :])
    return D


def sensitivity(site_energies, positions):
    """S[i, k] = |∂E_i/∂r_k| [n_atoms, n_atoms] by autograd."""
    J = torch.autograd.functional.jacobian(site_energies, positions)  # [n, n, 3]
    return J.norm(dim=-1)


def assert_receptive_field(S, expected_mask, dtype):
    """Non-zero where expected (clearly above rounding), exactly zero elsewhere."""
    floor = {torch.float32: 1e-6, torch.float64: 1e-12}[dtype] * S.max().item()
    felt, mask = S > floor, torch.as_tensor(expected_mask)
    assert torch.equal(felt, mask), f"felt\n{felt.int()}\nexpected\n{mask.int()}"
    if (~mask).any():
        assert S[~mask].max().item() == 0.0  # no path in the computation graph: exactly zero


@pytest.fixture(scope="module")
def chain():
    return chain_atoms(R_C)


def test_chain_geometry(chain):
    """Only consecutive atoms are neighbours; k lies between r_c and 2 r_c of i, l beyond 2 r_c."""
    d = chain.get_all_distances()
    assert np.all(np.abs(np.diag(d, 1)) < R_C)
    assert R_C < d[0, 2] < 2 * R_C and R_C < d[1, 3] < 2 * R_C and d[0, 3] > 2 * R_C
    graph = atoms_to_graph(chain, R_C)
    assert np.array_equal(hops(graph["edge_index"], 4), np.abs(np.subtract.outer(np.arange(4), np.arange(4))))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [1, 2, 3])
def test_mace_feels_T_hops(chain, T, dtype):
    model = small_mace(T, dtype)
    graph = atoms_to_graph(chain, R_C, dtype=dtype)
    S = sensitivity(lambda p: model.node_energies(graph, p), graph["positions"])
    assert_receptive_field(S, hops(graph["edge_index"], 4) <= T, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cutoff", [R_C, 2 * R_C])
def test_ace_feels_its_cutoff(chain, cutoff, dtype):
    basis = ACEBasis([1, 6, 8], r_max=cutoff, n_max=4, l_max=2, max_degree=(4, 5, 4)).to(dtype)
    c = torch.randn(basis.num_basis, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    graph = atoms_to_graph(chain, cutoff, dtype=dtype)
    S = sensitivity(lambda p: basis(p, graph["atomic_numbers"], graph["edge_index"], graph["shifts"]) @ c,
                    graph["positions"])
    assert_receptive_field(S, chain.get_all_distances() < cutoff, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_control_nonlocal_energy_is_caught(chain, dtype):
    """A 2-layer MACE plus a global term (depends on every atom) must fail the receptive-field check."""
    model = small_mace(2, dtype)
    graph = atoms_to_graph(chain, R_C, dtype=dtype)

    def nonlocal_energies(p):
        return model.node_energies(graph, p) + 1e-3 * (p - p.mean(0)).pow(2).sum()

    S = sensitivity(nonlocal_energies, graph["positions"])
    with pytest.raises(AssertionError):
        assert_receptive_field(S, hops(graph["edge_index"], 4) <= 2, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_receptive_field_experiment(dtype):
    """The numbers of figures/mpnn_ace.png: moving k changes E_i for MACE T=2 and ACE 2r_c only."""
    res = receptive_field_experiment(dtype=dtype)
    dE = res["dE_i"]
    noise = 1000 * torch.finfo(dtype).eps * max(res["dE_k"].values())  # far above rounding of E ~ ΔE_k
    assert dE["MACE T=2"] > noise and dE["ACE 2r_c"] > noise
    # no dependence at all: the same floating-point operations give bit-identical E_i (on CPU)
    assert dE["MACE T=1"] == 0.0 and dE["ACE r_c"] == 0.0 and dE["MACE T=2, no j"] == 0.0
    assert all(v > noise for v in res["dE_k"].values())  # positive control: k itself always changes
    if dtype == torch.float32:  # the signal is real: float32 agrees with float64
        ref = receptive_field_experiment(dtype=torch.float64)["dE_i"]
        for name in ("MACE T=2", "ACE 2r_c"):
            assert abs(dE[name] - ref[name]) <= 1e-3 * ref[name]
    assert res["distances"]["jk"] < res["r_c"] < res["distances"]["ik"] < 2 * res["r_c"] < res["distances"]["il"]
