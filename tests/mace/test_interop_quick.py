"""minimace reproduces mace-torch 0.3.16 (same weights): energies and forces to 1e-10 in float64.

Runs in the second environment: ``.venv-mace/bin/python -m pytest tests/mace -q``.
Random mace-torch models (their own random initialisation) are converted with
``minimace.interop.from_mace_torch``; both evaluate the same molecules (mace's edge convention is built
from minimace's graph: sender = neighbour j, receiver = centre i, shift -> -shift), so these tests isolate
the model from the neighbour list and also compare node energies and virials. ``test_interop.py`` covers the
configuration grid with independently built graphs, float32, a trained model and unsupported options.
"""

import mace  # noqa: F401  (must be imported before e3nn.o3)
import numpy as np
import pytest
import torch
from ase.build import molecule
from e3nn import o3
from mace.modules import MACE as MaceMACE
from mace.modules import RealAgnosticInteractionBlock, RealAgnosticResidualInteractionBlock, ScaleShiftMACE

from minimace.graph import atoms_to_graph, batch_graphs
from minimace.interop import from_mace_torch

Z = [1, 6, 8]


def mace_model(scale_shift: bool, hidden: str = "8x0e+8x1o", correlation=3, num_interactions=2, seed=0):
    torch.manual_seed(seed)
    kwargs = dict(
        r_max=4.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=RealAgnosticResidualInteractionBlock, interaction_cls_first=RealAgnosticInteractionBlock,
        num_interactions=num_interactions, num_elements=3, hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.array([-13.6, -1029.8, -2041.9]),
        avg_num_neighbors=5.3, atomic_numbers=Z, correlation=correlation, gate=torch.nn.functional.silu,
        radial_MLP=[16, 16, 16],
    )
    if scale_shift:
        return ScaleShiftMACE(atomic_inter_scale=1.7, atomic_inter_shift=-0.3, **kwargs)
    return MaceMACE(**kwargs)


def mace_batch(batch: dict) -> dict:
    """minimace's batch in mace-torch's convention (edge (sender, receiver), vector r_i - r_j + shift)."""
    onehot = torch.nn.functional.one_hot(
        torch.tensor([Z.index(int(z)) for z in batch["atomic_numbers"]]), len(Z)
    ).double()
    return {
        "positions": batch["positions"].clone(), "node_attrs": onehot, "edge_index": batch["edge_index"].flip(0),
        "shifts": -batch["shifts"], "unit_shifts": -batch["unit_shifts"], "cell": batch["cell"].reshape(-1, 3),
        "batch": batch["batch"], "ptr": batch["ptr"],
    }


def molecules_list():
    atoms = [molecule("CH3CH2OH"), molecule("CH3COCH3"), molecule("H2O")]
    rng = np.random.default_rng(0)
    for a in atoms:
        a.positions += 0.1 * rng.standard_normal(a.positions.shape)
    return [atoms_to_graph(a, 4.0, dtype=torch.float64) for a in atoms]


def molecules():
    return batch_graphs(molecules_list())


@pytest.fixture(autouse=True)
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def relerr(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize(
    "scale_shift,hidden,correlation,T",
    [(True, "4x0e+4x1o+4x2e", [2, 3], 2), (False, "8x0e", 3, 1)],  # the full grid: test_interop.py
)
def test_same_energy_and_forces_as_mace_torch(scale_shift, hidden, correlation, T):
    mm = mace_model(scale_shift, hidden, correlation, T)
    ours = from_mace_torch(mm)
    batch = molecules()
    ref = mm(mace_batch(batch), compute_force=True)
    out = ours(batch)
    node_e0 = ours.atomic_energies(ours.species(batch["atomic_numbers"]))  # [n_nodes]
    e0 = torch.zeros_like(ref["energy"]).index_add(0, batch["batch"], node_e0)
    assert relerr(out["energy"] - e0, ref["energy"] - e0) < 1e-10, (out["energy"], ref["energy"])
    assert relerr(out["forces"], ref["forces"]) < 1e-10
    assert relerr(out["node_energy"], ref["node_energy"]) < 1e-10


def test_sign_flip_of_odd_paths_is_needed():
    """Negative control: without negating the odd-l_sh radial weights, the energies differ."""
    mm = mace_model(False)
    ours = from_mace_torch(mm)
    batch = molecules()
    ref = mm(mace_batch(batch), compute_force=True)
    with torch.no_grad():
        ab = ours.atomic_bases[1]
        last, start = ab.radial_mlp.weights[-1], 0
        for i, l2, _ in ab.conv_tp.paths:
            mul = ab.conv_tp.irreps_in1[i].mul
            if l2 % 2 == 1:
                last[:, start : start + mul] *= -1.0
            start += mul
    out = ours(batch)
    assert relerr(out["energy"], ref["energy"]) > 1e-6


def test_same_stress_and_virials_as_mace_torch_periodic():
    from ase import Atoms

    rng = np.random.default_rng(3)
    cell = np.array([[4.6, 0.3, 0.0], [0.1, 4.3, 0.2], [0.0, -0.2, 4.8]])
    atoms = Atoms(numbers=[8, 1, 1, 6, 1, 8], scaled_positions=rng.uniform(size=(6, 3)), cell=cell, pbc=True)
    batch = batch_graphs([atoms_to_graph(atoms, 4.0, dtype=torch.float64), molecules_list()[0]])
    mm = mace_model(True)
    ours = from_mace_torch(mm)
    ref = mm(mace_batch(batch), compute_force=True, compute_stress=True, compute_virials=True)
    out = ours(batch, compute_stress=True)
    assert relerr(out["forces"], ref["forces"]) < 1e-10
    assert relerr(out["virials"], ref["virials"]) < 1e-10
    assert relerr(out["stress"][0], ref["stress"][0]) < 1e-10
