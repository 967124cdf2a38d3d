"""minimace reproduces mace-torch 0.3.16 (issue 5): same energies, forces and stress to 1e-10 in float64.

Runs in the second environment: ``.venv-mace/bin/python -m pytest tests/mace -q``.
Each side builds its own graphs: mace-torch with its data pipeline (``config_from_atoms`` →
``AtomicData.from_config``, matscipy neighbour list → ``torch_geometric`` batch), minimace with
``minimace.graph`` (vesin). Random models (mace-torch's own initialisation) cover the configuration grid
of the issue; one model is trained for a few optimizer steps in mace-torch before the conversion.
"""

import copy

import mace  # noqa: F401  (must be imported before e3nn.o3)
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.calculators.lj import LennardJones
from e3nn import o3
from mace import modules as mace_modules
from mace.tools import torch_geometric

from minimace.datasets import silicon_cells
from minimace.graph import atoms_to_graph, batch_graphs
from minimace.interop import (
    UnsafeModelFileError,
    compare_with_mace_torch,
    from_mace_torch,
    from_mace_torch_file,
    mace_torch_batch,
    use_own_coupling_basis,
)

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
E0 = {1: -13.6, 6: -1029.8, 7: -1485.3, 8: -2041.9, 14: -158.5}


def build_mace(Z, hidden, max_ell, correlation, T, scale_shift, dtype=torch.float64, seed=0, **options):
    """A random mace-torch model (its own initialisation), default dtype ``dtype`` while it is built."""
    torch.manual_seed(seed)
    kwargs = dict(
        r_max=options.pop("r_max", 4.0), num_bessel=options.pop("num_bessel", 8),
        num_polynomial_cutoff=options.pop("num_polynomial_cutoff", 5), max_ell=max_ell,
        interaction_cls=options.pop("interaction_cls", mace_modules.RealAgnosticResidualInteractionBlock),
        interaction_cls_first=options.pop("interaction_cls_first", mace_modules.RealAgnosticInteractionBlock),
        num_interactions=T, num_elements=len(Z), hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps(options.pop("MLP_irreps", "16x0e")), atomic_energies=np.array([E0[z] for z in Z]),
        avg_num_neighbors=options.pop("avg_num_neighbors", 6.3), atomic_numbers=list(Z), correlation=correlation,
        gate=options.pop("gate", torch.nn.functional.silu), radial_MLP=options.pop("radial_MLP", [16, 16]),
        **options,
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        if scale_shift:
            return mace_modules.ScaleShiftMACE(atomic_inter_scale=1.7, atomic_inter_shift=-0.3, **kwargs)
        return mace_modules.MACE(**kwargs)
    finally:
        torch.set_default_dtype(previous)


def random_structures(Z, seed, r_max):
    """A molecule-like cluster and two small periodic cells (a triclinic one smaller than r_max: many images)."""
    rng = np.random.default_rng(seed)

    def spread(n, box, min_dist=0.95):
        pos = []
        while len(pos) < n:
            p = rng.uniform(0, box, 3)
            if all(np.linalg.norm(p - q) > min_dist for q in pos):
                pos.append(p)
        return np.array(pos)

    cluster = Atoms(numbers=rng.choice(Z, 9), positions=spread(9, 3.5))
    cubic = Atoms(numbers=rng.choice(Z, 5), positions=spread(5, 3.2), cell=np.eye(3) * 3.4, pbc=True)
    cell = np.array([[3.1, 0.0, 0.0], [0.9, 2.9, 0.0], [0.6, 0.7, 3.3]]) * (0.9 * r_max / 4.0)
    tric = Atoms(numbers=rng.choice(Z, 3), cell=cell, pbc=True)
    tric.set_scaled_positions(rng.uniform(0, 1, (3, 3)))
    return [cluster], [cubic, tric]


def si_cells():
    """Generated 2-atom diamond and beta-tin cells and 64-atom disordered cells, labelled by a Lennard-Jones potential.

    The labels only have to be smooth functions of the positions (a few mace-torch training steps below).
    """
    cells = silicon_cells(n=13, n_liquid=2, seed=0)
    for atoms in cells["dia"] + cells["bt"]:
        atoms.calc = LennardJones(sigma=2.1, epsilon=1.0, rc=5.0, smooth=True)
        atoms.info["REF_energy"], atoms.arrays["REF_forces"] = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
    return cells["dia"], cells["bt"], cells["liq"]


def assert_same(result, dtype, what=""):
    tol = TOL[dtype]
    assert result["edges"][0] == result["edges"][1], f"{what}: edge counts differ {result['edges']}"
    for key in ("energy", "forces", "stress", "virials"):
        if key in result:
            assert result[key] < tol, f"{what}: {key} relative difference {result[key]:.2e} > {tol:g}"


def zero_e0(mm, ours):
    """Set the E0s of both models to zero: the energy is then the interaction energy alone.

    With E0s of ~10^3 eV, E − Σ E0 loses about 12 digits of a 10^-2 eV interaction energy in float64
    (6 in float32), so interaction energies are compared on models without E0s.
    """
    with torch.no_grad():
        mm.atomic_energies_fn.atomic_energies.zero_()
        ours.atomic_energies.atomic_energies.zero_()


def check_agreement(mm, ours, structure_sets, dtype=torch.float64, what=""):
    """Totals with E0s on the first set, then interaction energies, forces and stress on all sets."""
    assert_same(compare_with_mace_torch(mm, ours, structure_sets[0]), dtype, f"{what} with E0s")
    zero_e0(mm, ours)
    results = []
    for atoms in structure_sets:
        results.append(compare_with_mace_torch(mm, ours, atoms))
        assert_same(results[-1], dtype, what)
    return results


# ----------------------------------------------------------------------------- random models over the grid
GRID = [  # Z, hidden irreps, max_ell (mace-torch 0.3.16 cannot build max_ell 0), correlation, T, ScaleShift, options
    ((1, 6, 8), "16x0e", 1, 1, 1, False, {}),
    ((1, 6, 7, 8), "16x0e+16x1o", 2, 2, 2, True, {}),
    ((1, 6, 8), "8x0e+8x1o+8x2e", 3, 3, 2, True, {}),
    ((1, 8), "8x0e+8x1o", 3, [3, 1, 2], 3, False, {}),
    ((6,), "8x0e+8x1o+8x2e", 2, [1, 3], 2, True, {"r_max": 4.5}),
    ((1, 6, 8, 14), "16x0e", 3, 3, 3, True, {}),
    ((7, 8), "8x0e+8x1o", 1, 3, 2, False,
     {"gate": torch.tanh, "MLP_irreps": "8x0e", "radial_MLP": [8], "num_bessel": 6, "num_polynomial_cutoff": 6}),
    ((14,), "8x0e+8x1o+8x2e", 3, 2, 1, True, {"r_max": 5.0}),
]


@pytest.mark.parametrize("case", range(len(GRID)))
def test_random_models_agree_on_molecules_and_periodic_cells(case):
    Z, hidden, max_ell, correlation, T, scale_shift, options = GRID[case]
    mm = build_mace(Z, hidden, max_ell, correlation, T, scale_shift, seed=case, **options)
    ours = from_mace_torch(mm)
    assert type(ours).__module__ == "minimace.model"
    assert all(type(m).__module__.startswith(("minimace.", "torch.")) for m in ours.modules())  # no mace/e3nn code
    molecules, cells = random_structures(Z, case, float(mm.r_max))
    on_molecules, on_cells = check_agreement(mm, ours, [molecules, cells], what=f"case {case}")
    assert "stress" not in on_molecules and "stress" in on_cells


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_real_molecules_and_dtypes(dtype):
    mm = build_mace((1, 6, 8), "8x0e+8x1o", 2, 3, 2, True, dtype=dtype, seed=3)
    ours = from_mace_torch(mm)
    assert ours.embedding.weight.dtype == dtype
    atoms = [molecule("CH3CH2OH"), molecule("CH3COCH3"), molecule("H2O")]
    for i, a in enumerate(atoms):
        a.positions += 0.05 * np.random.default_rng(i).standard_normal(a.positions.shape)
    (result,) = check_agreement(mm, ours, [atoms], dtype, str(dtype))
    assert result["minimace"]["forces"].dtype == dtype


def test_elements_of_the_model_missing_from_the_batch():
    """A model for H, C, O, Si on molecules without Si (and water without C): an element with no atom is fine."""
    mm = build_mace((1, 6, 8, 14), "8x0e+8x1o", 2, 3, 2, True, seed=13)
    ours = from_mace_torch(mm)
    check_agreement(mm, ours, [[molecule("CH3CH2OH"), molecule("H2O")], [molecule("H2O")]], what="missing elements")


def test_si_cells_with_many_images():
    """2-atom diamond and beta-tin cells with r_max 5 (each pair has many images) and a 64-atom disordered cell."""
    dia, bt, liq = si_cells()
    mm = build_mace((14,), "8x0e+8x1o+8x2e", 3, 3, 2, True, seed=11, r_max=5.0)
    ours = from_mace_torch(mm)
    on_dia, on_bt, _ = check_agreement(mm, ours, [dia[:3], bt[:3], liq[:1]], what="Si")
    for result in (on_dia, on_bt):
        assert result["edges"][0] > 20 * 3  # many periodic images of a 2-atom cell


def test_edges_are_the_same_set():
    """The two neighbour lists (matscipy in mace-torch, vesin in minimace) give the same edges.

    mace-torch's edge (sender s, receiver r, shift S) has vector r_r − r_s + S, minimace's
    (centre i, neighbour j, shift S') has r_j − r_i + S': the same edge is (i, j, S') = (r, s, −S).
    """
    dia, _, _ = si_cells()
    mm = build_mace((14,), "4x0e", 1, 1, 1, False, r_max=5.0)
    atoms = dia[:2]
    theirs = mace_torch_batch(atoms, mm)
    ours = batch_graphs([atoms_to_graph(a, 5.0) for a in atoms])
    s, r = theirs["edge_index"].tolist()
    S = (-theirs["unit_shifts"]).round().long().tolist()
    mace_edges = sorted((r[e], s[e], *S[e]) for e in range(len(s)))
    i, j = ours["edge_index"].tolist()
    S2 = ours["unit_shifts"].round().long().tolist()
    our_edges = sorted((i[e], j[e], *S2[e]) for e in range(len(i)))
    assert len(set(our_edges)) == len(our_edges) and mace_edges == our_edges


# ----------------------------------------------------------------------------- a trained model
def test_model_trained_for_a_few_steps_in_mace_torch():
    dia, bt, liq = si_cells()
    train = dia[:6] + bt[:6]
    mm = build_mace((14,), "8x0e+8x1o", 2, 3, 2, True, seed=5, r_max=5.0, avg_num_neighbors=30.0)
    before = {k: v.clone() for k, v in mm.state_dict().items()}
    batch = mace_torch_batch(train, mm, info_keys={"energy": "REF_energy"}, arrays_keys={"forces": "REF_forces"})
    batch = torch_geometric.Batch(**batch)
    loss_fn = mace_modules.WeightedEnergyForcesLoss(energy_weight=1.0, forces_weight=10.0)
    optimizer = torch.optim.Adam(mm.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = loss_fn(ref=batch, pred=mm(batch.to_dict(), training=True, compute_force=True))
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    changed = [k for k, v in mm.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert len(changed) >= 10, changed  # the weights really moved
    ours = from_mace_torch(mm)
    check_agreement(mm, ours, [dia[10:13], bt[10:13], liq[1:]], what="trained")
    # minimace's own, smaller coupling basis with projected weights: same outputs, fewer weights
    own = use_own_coupling_basis(copy.deepcopy(ours))
    n_weights = [sum(p.numel() for p in m.messages.parameters()) for m in (ours, own)]
    assert n_weights[1] < n_weights[0] / 2, n_weights
    for atoms in (dia[10:13], liq[1:]):
        assert_same(compare_with_mace_torch(mm, own, atoms), torch.float64, "own coupling basis")


def test_projection_on_own_basis_refuses_a_foreign_U():
    """Negative control: a U that is not an equivariant coupling is not in the span; the projection refuses."""
    mm = build_mace((1, 8), "4x0e+4x1o", 2, 2, 1, False)
    ours = from_mace_torch(mm)
    contraction = ours.messages[0].contractions[0]
    U = contraction.U(2)
    contraction.set_U(2, U + 1e-3 * torch.randn(U.shape, generator=torch.Generator().manual_seed(0), dtype=U.dtype))
    with pytest.raises(ValueError, match="not in the span"):
        use_own_coupling_basis(ours)


# ----------------------------------------------------------------------------- negative controls
def test_a_perturbed_weight_is_detected():
    """Negative control: the comparison sees a change of one weight (so it can fail)."""
    mm = build_mace((1, 6, 8), "8x0e+8x1o", 2, 2, 2, True, seed=7)
    ours = from_mace_torch(mm)
    atoms = [molecule("CH3CH2OH")]
    check_agreement(mm, ours, [atoms])
    with torch.no_grad():
        ours.messages[0].contractions[0].weights[0][0, 0, 0] += 1e-3
    result = compare_with_mace_torch(mm, ours, atoms)
    assert result["energy"] > 1e-8 and result["forces"] > 1e-8
    with pytest.raises(AssertionError):
        assert_same(result, torch.float64)


def test_a_different_neighbour_list_is_detected():
    """Negative control: a cutoff 0.2 Å shorter on our side changes the edge count."""
    _, _, liq = si_cells()
    mm = build_mace((14,), "4x0e", 1, 1, 1, False, r_max=5.0)
    theirs = mace_torch_batch(liq[:1], mm)
    ours = atoms_to_graph(liq[0], 4.8)
    assert theirs["edge_index"].shape[1] != ours["edge_index"].shape[1]


# ----------------------------------------------------------------------------- unsupported options
UNSUPPORTED = [
    ("radial_type", {"radial_type": "gaussian"}),
    ("distance_transform", {"distance_transform": "Agnesi"}),
    ("pair_repulsion", {"pair_repulsion": True}),
    ("heads", {"heads": ["a", "b"]}),
    ("apply_cutoff", {"apply_cutoff": False}),
    ("use_agnostic_product", {"use_agnostic_product": True}),
    ("use_last_readout_only", {"use_last_readout_only": True}),
    ("keep_last_layer_irreps", {"keep_last_layer_irreps": True}),
    ("interaction_cls", {"interaction_cls": mace_modules.RealAgnosticDensityResidualInteractionBlock}),
    ("interaction_cls_first", {"interaction_cls_first": mace_modules.RealAgnosticResidualInteractionBlock}),
    ("readout_cls", {"readout_cls": mace_modules.blocks.NonLinearBiasReadoutBlock}),
    ("hidden_irreps", {"hidden": "4x0e+4x1e"}),
    ("gate", {"gate": torch.nn.functional.gelu}),
]


@pytest.mark.parametrize("option,kwargs", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_options_raise_naming_the_option(option, kwargs):
    kwargs = dict(kwargs)
    hidden = kwargs.pop("hidden", "4x0e+4x1o")
    mm = build_mace((1, 8), hidden, 1, 1, 2, True, **kwargs)
    with pytest.raises(NotImplementedError, match=option):
        from_mace_torch(mm)


def test_supported_defaults_do_not_raise():
    """Control for the test above: the same small model without the option converts."""
    from_mace_torch(build_mace((1, 8), "4x0e+4x1o", 1, 1, 2, True))
