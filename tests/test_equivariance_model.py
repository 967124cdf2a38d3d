"""E(3) and permutation equivariance of every stage inside a MACE with hidden irreps up to 3o, and of the whole model.

MACE (Batatia et al. 2022, arXiv:2206.07697), Sec. 2: E_i must be invariant, forces rotate as vectors,
stress as R σ Rᵀ, and every intermediate feature h^{(t)} (Eq. 12), A^{(t)} (Eq. 8) and m^{(t)} (Eq. 11) must
transform with the Wigner matrices D(R) of its irreps — including reflections, which flip the sign of odd-parity
blocks. tests/test_model.py covers the full model with hidden irreps "4x0e+4x1o"; here the hidden irreps are
"4x0e+4x1o+4x2e+4x3o" (three layers, so that the middle layer maps all of them to all of them), the stages are
checked one by one on the inputs the model really feeds them (captured with forward hooks), on a real molecule
(rMD17 ethanol, shared data) and a real periodic box (the bundled GFN2-xTB water box), in float32 and float64.
Negative controls: a layer that uses the raw x-coordinate, a layer that drops the parity sign (mislabels the
parity of its inputs), a non-local energy that depends on absolute positions and one that depends on atom order.
"""

import pytest
import torch

from minimace.atomic_basis import AtomicBasis
from minimace.datasets import bundled, load_shared
from minimace.graph import batch_graphs
from minimace.model import MACE
from minimace.one_particle import EdgeEmbedding
from minimace.so3 import Irreps
from minimace.testing import (BATCH_ATOMS, BATCH_KINDS, assert_equivariant, assert_model_equivariant,
                              permutation_within_graphs)

DTYPES = [torch.float32, torch.float64]
R_MAX, LMAX = 3.5, 3
HIDDEN = "4x0e+4x1o+4x2e+4x3o"
SH = str(Irreps.spherical_harmonics(LMAX))  # 1x0e+1x1o+1x2e+1x3o


def build_model(dtype, seed=0):
    torch.manual_seed(seed)
    model = MACE(r_max=R_MAX, num_bessel=6, max_ell=LMAX, correlation=3, num_interactions=3, hidden_irreps=HIDDEN,
                 MLP_irreps="4x0e", radial_MLP=[8, 8], avg_num_neighbors=3.0, atomic_numbers=[1, 6, 8],
                 atomic_energies=[-1.0, -3.0, -5.0])
    return model.to(dtype)


@pytest.fixture(scope="module")
def models():
    base = build_model(torch.float64)
    out = {torch.float64: base}
    m32 = build_model(torch.float64)
    m32.load_state_dict(base.state_dict())
    out[torch.float32] = m32.float()
    return out


def ethanol(dtype):
    """The first rMD17 ethanol configuration (tests calling it take the ``shared`` fixture: skip or fail without it)."""
    config = load_shared("botnet_ethanol", "train", index="0:1")[0]
    return batch_graphs([config.to_graph(R_MAX, dtype=dtype)])


def water_box(dtype):
    return batch_graphs([bundled("water_box", index="0:1")[0].to_graph(R_MAX, dtype=dtype)])


STRUCTURES = {"ethanol": ethanol, "water_box": water_box}


def capture(model, batch):
    """Inputs and outputs of every stage in one forward pass: {name: (args, output)}."""
    seen, hooks = {}, []
    stages = {"edge_embedding": model.edge_embedding}
    for t in range(len(model.atomic_bases)):
        stages.update({f"atomic_basis{t}": model.atomic_bases[t], f"message{t}": model.messages[t],
                       f"update{t}": model.updates[t], f"readout{t}": model.readouts[t]})
    for name, module in stages.items():
        hooks.append(module.register_forward_hook(
            lambda mod, args, out, name=name: seen.__setitem__(name, (tuple(a for a in args), out))))
    try:
        model(batch, compute_forces=False)
    finally:
        for h in hooks:
            h.remove()
    return seen


# ---------------------------------------------------------------------------------------------------
# Each stage, on the inputs the model feeds it
# ---------------------------------------------------------------------------------------------------
def stage_checks(model, batch):
    """(name, fn, args, kinds_in, kinds_out, atoms_in, atoms_out) for every stage of every layer."""
    seen = capture(model, batch)
    (vectors,), _ = seen["edge_embedding"]
    yield ("edge_embedding (Y, j_n·f_p)", model.edge_embedding, (vectors,), ("cartesian_vectors",),
           (SH, "0e"), ("atoms",), ("atoms", "atoms"))  # "atoms" here: edges, permuted together
    for t in range(len(model.atomic_bases)):
        basis, message = model.atomic_bases[t], model.messages[t]
        update, readout = model.updates[t], model.readouts[t]
        (h, species, Y, radial, edge_index), _ = seen[f"atomic_basis{t}"]
        yield (f"A^({t}) (Eq. 8)", basis, (h, species, Y, radial, edge_index),
               (str(basis.node_irreps), None, SH, "0e", None), str(basis.target_irreps),
               ("atoms", "atoms", None, None, "atom_index"), "atoms")
        (A, species), _ = seen[f"message{t}"]
        yield (f"m^({t}) (Eq. 10-11)", message,
               (A, species), (str(message.irreps_in), None), str(message.irreps_out), ("atoms", "atoms"), "atoms")
        (m, h, species), _ = seen[f"update{t}"]
        irreps_h = str(basis.node_irreps)  # h^{(t)}, the input of this layer
        yield (f"h^({t + 1}) (Eq. 12)", update, (m, h, species), (str(update.irreps_out), irreps_h, None),
               str(update.irreps_out), ("atoms", "atoms", "atoms"), "atoms")
        (h_new,), _ = seen[f"readout{t}"]
        yield (f"E_i readout {t} (Eq. 13)", readout, (h_new,), (str(update.irreps_out),), "0e", ("atoms",), "atoms")


@pytest.mark.shared_data("botnet_ethanol")
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_stage_is_equivariant(models, dtype, shared):
    model, batch = models[dtype], ethanol(dtype)
    checks = list(stage_checks(model, batch))
    assert len(checks) == 1 + 4 * 3
    irreps_seen = set()
    for name, fn, args, kin, kout, ain, aout in checks:
        report = assert_equivariant(fn, args, kin, kout, atoms_in=ain, atoms_out=aout, n_trials=2)
        assert set(report.errors) == {"rotation", "reflection", "permutation"}, name
        irreps_seen |= {str(ir) for _, ir in Irreps(kout if isinstance(kout, str) else kout[0])}
    assert {"0e", "1o", "2e", "3o"} <= irreps_seen  # the odd/even blocks up to l = 3 were really checked


@pytest.mark.parametrize("dtype", DTYPES)
def test_hidden_features_of_the_model_are_equivariant(models, dtype):
    """h^{(1)}, h^{(2)} (all of 0e+1o+2e+3o) and h^{(3)} as functions of the positions of a periodic box."""
    model, batch = models[dtype], water_box(dtype)

    def features(b):
        return {name: out for name, (_, out) in capture(model, b).items() if name.startswith("update")}

    kinds_out = {f"update{t}": str(model.updates[t].irreps_out) for t in range(3)}
    assert kinds_out["update0"] == HIDDEN == kinds_out["update1"] and kinds_out["update2"] == "4x0e"
    assert_equivariant(features, (batch,), (BATCH_KINDS,), kinds_out, atoms_in=(BATCH_ATOMS,),
                       atoms_out={k: "atoms" for k in kinds_out}, permutation=permutation_within_graphs(batch["ptr"]),
                       n_trials=2)


# ---------------------------------------------------------------------------------------------------
# The whole model: energy, node energies, forces, stress (R σ Rᵀ), virials
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("structure", [pytest.param("ethanol", marks=pytest.mark.shared_data("botnet_ethanol")),
                                       "water_box"])
def test_whole_model_is_equivariant(models, structure, dtype, request):
    if structure == "ethanol":
        request.getfixturevalue("shared")  # rMD17 ethanol: skip, or fail under CI=true, without it
    model, batch = models[dtype], STRUCTURES[structure](dtype)
    report = assert_model_equivariant(lambda b: model(b, compute_stress=True), batch, n_trials=2)
    assert set(report.errors) == {"rotation", "reflection", "translation", "permutation"}
    paths = {path for _, _, path in report.errors.values()}
    assert all(p.startswith("out[") for p in paths)
    if structure == "water_box":  # a real stress, not the zeros of a molecule
        assert model(batch, compute_stress=True)["stress"].abs().max() > 1e-3


def test_float32_errors_are_larger_but_within_bounds(models):
    """Error sizes: float64 near 1e-15 relative, float32 near 1e-7; each within its default bound."""
    errors = {}
    for dtype in DTYPES:
        batch = water_box(dtype)
        report = assert_model_equivariant(lambda b: models[dtype](b, compute_stress=True), batch,
                                          tests=("rotation", "reflection"), n_trials=2)
        errors[dtype] = report.max_error
    assert errors[torch.float64] < 1e-12 and errors[torch.float32] < 1e-4
    assert errors[torch.float32] > 100 * errors[torch.float64]  # the float32 errors are rounding, seen as such


# ---------------------------------------------------------------------------------------------------
# Negative controls: broken models that the checks must catch, each by the right test
# ---------------------------------------------------------------------------------------------------
class RawXEdgeEmbedding(EdgeEmbedding):
    """Broken: the radial features also depend on the raw x-coordinate of r_ij (not rotation invariant)."""

    def forward(self, vectors):
        Y, radial = super().forward(vectors)
        return Y, radial * (1 + 0.5 * vectors[:, :1])


def broken_raw_x(dtype):
    model = build_model(dtype)
    cfg = model.config
    model.edge_embedding = RawXEdgeEmbedding(cfg["r_max"], cfg["num_bessel"], cfg["num_polynomial_cutoff"], LMAX)
    return model


def broken_parity(dtype):
    """Broken: layer 2's atomic basis believes h^{(1)} has parities 1e, 2o, 3e, so it couples 1o ⊗ Y_1 into "1o"
    (really a cross product, 1e): every operation is still rotation-equivariant, but parity is lost."""
    model = build_model(dtype)
    good = model.atomic_bases[1]
    mislabelled = Irreps("4x0e+4x1e+4x2o+4x3e")
    assert mislabelled.dim == good.node_irreps.dim
    torch.manual_seed(1)
    model.atomic_bases[1] = AtomicBasis(mislabelled, LMAX, good.target_irreps, model.config["num_bessel"], [8, 8],
                                        model.config["avg_num_neighbors"], model.num_elements, False).to(dtype)
    return model


@pytest.mark.shared_data("botnet_ethanol")
@pytest.mark.parametrize("dtype", DTYPES)
def test_raw_x_coordinate_layer_is_caught_by_rotations(dtype, shared):
    model, batch = broken_raw_x(dtype), ethanol(dtype)
    fn = lambda b: model(b)  # noqa: E731
    with pytest.raises(AssertionError, match="FAIL rotation"):
        assert_model_equivariant(fn, batch, tests=("rotation",), n_trials=1)
    # it is still permutation equivariant: the checks single out the broken symmetry
    # (the "translation" test of assert_equivariant draws a rotation too, so it fails here as well)
    assert_model_equivariant(fn, batch, tests=("permutation",), n_trials=1)
    # the stage check finds the broken stage itself
    (vectors,), _ = capture(model, batch)["edge_embedding"]
    with pytest.raises(AssertionError, match="FAIL rotation"):
        assert_equivariant(model.edge_embedding, (vectors,), ("cartesian_vectors",), (SH, "0e"), tests=("rotation",))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropped_parity_is_caught_by_reflections_only(dtype):
    model, batch = broken_parity(dtype), water_box(dtype)
    fn = lambda b: model(b, compute_stress=True)  # noqa: E731
    assert_model_equivariant(fn, batch, tests=("rotation",), n_trials=2)
    with pytest.raises(AssertionError, match="FAIL reflection"):
        assert_model_equivariant(fn, batch, tests=("reflection",), n_trials=1)
    # the stage check finds the broken stage: layer 2's A, given the true irreps of h^{(1)}
    (h, species, Y, radial, edge_index), _ = capture(model, batch)["atomic_basis1"]
    kinds = (HIDDEN, None, SH, "0e", None)
    basis = model.atomic_bases[1]
    assert_equivariant(basis, (h, species, Y, radial, edge_index), kinds, str(basis.target_irreps), tests=("rotation",))
    with pytest.raises(AssertionError, match="FAIL reflection"):
        assert_equivariant(basis, (h, species, Y, radial, edge_index), kinds, str(basis.target_irreps),
                           tests=("reflection",))


@pytest.mark.shared_data("botnet_ethanol")
def test_absolute_positions_are_caught_by_translations(shared):
    model, batch = build_model(torch.float64), ethanol(torch.float64)

    def absolute(b):
        out = model(b, compute_forces=False)
        return {"energy": out["energy"] + 0.01 * b["positions"].pow(2).sum()}  # |r|² of absolute positions

    assert_model_equivariant(absolute, batch, tests=("rotation", "reflection"), n_trials=1)  # about the origin: fine
    with pytest.raises(AssertionError, match="FAIL translation"):
        assert_model_equivariant(absolute, batch, tests=("translation",), n_trials=1)


def test_atom_order_is_caught_by_permutations():
    model, batch = build_model(torch.float64), water_box(torch.float64)

    def ordered(b):
        out = model(b, compute_forces=False)
        weights = 1 + 0.01 * torch.arange(len(out["node_energy"]), dtype=out["node_energy"].dtype)
        return {"energy": (weights * out["node_energy"]).sum()[None]}

    assert_model_equivariant(ordered, batch, tests=("rotation", "reflection", "translation"), n_trials=1)
    with pytest.raises(AssertionError, match="FAIL permutation"):
        assert_model_equivariant(ordered, batch, tests=("permutation",), n_trials=1)
