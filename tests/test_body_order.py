"""Body order of MACE (MACE Eq. 7 with Eqs. 8, 12, 13): the formula against a measured cluster expansion."""

import ase
import numpy as np
import pytest
import torch

from ase.build import molecule

from minimace.body_order import (body_order, body_order_table, many_body_terms, receptive_field,
                                 site_energy_on_subsets, with_linear_readouts)
from minimace.datasets import bundled
from minimace.graph import atoms_to_graph
from minimace.model import MACE

R_MAX = 5.0


def compact_cluster(n: int) -> ase.Atoms:
    """n atoms inside a cube of side 2.8 Å: every pair within the cutoff, so every subset is one environment."""
    pos = np.random.default_rng(0).uniform(-1.4, 1.4, size=(n, 3))
    return ase.Atoms(("COHH" * n)[:n], positions=pos)


def small_mace(nu: int, T: int, linear_readout: bool = True) -> MACE:
    torch.manual_seed(0)
    model = MACE(r_max=R_MAX, num_bessel=4, max_ell=2, correlation=nu, num_interactions=T,
                 hidden_irreps="4x0e+4x1o", MLP_irreps="4x0e", radial_MLP=[8], atomic_numbers=[1, 6, 8]).double()
    return with_linear_readouts(model) if linear_readout else model


def test_formula():
    assert [body_order(1, T) for T in range(5)] == [1, 2, 3, 4, 5]       # two-body MPNN: one atom per layer
    assert body_order(3, 1) == 4 and body_order(3, 2) == 13               # the paper's ν = 3
    assert body_order([3, 2], 2) == 1 + 2 * (1 + 3)                       # ν per layer: b_2 = 1 + ν_2 b_1
    assert body_order_table((2,), (1, 2, 3))[2] == {1: 3, 2: 7, 3: 15}
    with pytest.raises(ValueError, match="correlation orders given"):
        body_order([3, 3], 3)
    with pytest.raises(ValueError, match=">= 1"):
        body_order(0, 2)


@pytest.mark.parametrize("nu, T", [(1, 1), (2, 1), (3, 1), (1, 2), (1, 3), (2, 2)])
def test_cluster_expansion_ends_at_the_body_order(nu, T):
    """g(U) of the site energy (linear readouts) is nonzero up to |U| = b and zero beyond it."""
    b = body_order(nu, T)
    atoms = compact_cluster(b + 1)
    g = many_body_terms(site_energy_on_subsets(small_mace(nu, T), atoms), 0, range(1, b + 1))
    scale = max(g.values())
    assert g[b] > 1e-9 * scale, g                          # the b-body term exists ...
    assert g[b + 1] < 1e-12 * scale, g                     # ... and nothing beyond it (rounding only)


def test_nonlinear_readout_breaks_the_body_order():
    """Negative control: minimace's default MLP readout on the last layer is not body ordered."""
    nu, T = 1, 2
    b = body_order(nu, T)
    atoms = compact_cluster(b + 1)
    g = many_body_terms(site_energy_on_subsets(small_mace(nu, T, linear_readout=False), atoms), 0, range(1, b + 1))
    assert g[b + 1] > 1e-9 * max(g.values()), g


def test_many_body_terms_of_a_known_function():
    """A pair potential plus one three-body term: g vanishes beyond three atoms and is exact below."""
    pair = {1: 0.5, 2: -0.25, 3: 2.0}
    def energy(atoms):
        others = atoms[1:]
        return sum(pair[j] for j in others) + (0.125 if {1, 2} <= set(others) else 0.0)
    g = many_body_terms(energy, 0, [1, 2, 3])
    assert g == {1: 0.0, 2: 2.0, 3: 0.125, 4: 0.0}


@pytest.mark.parametrize("T", [1, 2, 3])
def test_receptive_field_is_what_the_model_depends_on(T):
    """hops[i] = number of atoms k with ∂E_i/∂r_k ≠ 0 for a T-layer MACE (autograd), on ethanol with a short r_c."""
    atoms, r_c = molecule("CH3CH2OH"), 1.6                    # bonds only: ethanol becomes a sparse graph
    field = receptive_field(atoms, r_c, T)
    torch.manual_seed(0)
    model = MACE(r_max=r_c, num_bessel=4, max_ell=1, correlation=2, num_interactions=T, hidden_irreps="4x0e+4x1o",
                 MLP_irreps="4x0e", radial_MLP=[8], atomic_numbers=[1, 6, 8]).double()
    graph = atoms_to_graph(atoms, r_c)
    S = torch.autograd.functional.jacobian(lambda p: model.node_energies(graph, p), graph["positions"])
    depends = (S.norm(dim=-1) > 0).sum(dim=1).numpy()        # [n_atoms]
    assert (field["hops"] == depends).all(), (field["hops"], depends)
    assert (field["hops"] <= field["sphere"]).all()
    if T > 1:
        assert (field["hops"] < field["sphere"]).any()         # some atoms in the sphere are not on a chain


def test_receptive_field_of_a_periodic_box():
    """One layer sees exactly its r_c sphere (images included); more layers stay inside the T·r_c sphere."""
    box = bundled("water_box", index="0:1")[0].to_atoms()
    one = receptive_field(box, 3.0, 1)
    assert (one["hops"] == one["sphere"]).all() and (one["hops"] == 1 + one["neighbours"]).all()
    two = receptive_field(box, 3.0, 2)
    assert (two["hops"] <= two["sphere"]).all() and (two["hops"] > one["hops"]).all()
