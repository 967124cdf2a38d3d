"""Tests of the linear ACE potential (minimace.ace): symmetry of the B-features, force rows, counts, the fit."""

import itertools
import os
from pathlib import Path

import pytest
import torch

from minimace.ace import ACEBasis, LinearACE, design_matrix, mae_report
from minimace.data import read_configurations
from minimace.graph import batch_graphs
from minimace.testing import BATCH_ATOMS, BATCH_KINDS, assert_equivariant, assert_model_equivariant, \
    permutation_within_graphs

DATA = Path(os.environ["MINIMACE_DATA"])
SMALL = dict(r_max=5.0, n_max=4, l_max=2, max_degree=(4, 6, 6))


@pytest.fixture(scope="module")
def ethanol():
    configs = read_configurations(DATA / "botnet_ethanol" / "train.xyz", index=":90")
    return [c.to_graph(5.0) for c in configs]


def _features(basis):
    return lambda batch: basis(batch["positions"], batch["atomic_numbers"], batch["edge_index"], batch["shifts"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_b_features_invariant(ethanol, dtype):
    basis = ACEBasis([1, 6, 8], **SMALL).to(dtype)
    batch = batch_graphs(ethanol[:3])
    batch = {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
    atol = 1e-11 if dtype == torch.float64 else 2e-4  # features reach ~1e2-1e3: use the relative bound too
    assert_equivariant(_features(basis), (batch,), (BATCH_KINDS,), "0e", atoms_in=(BATCH_ATOMS,), atoms_out="atoms",
                       permutation=permutation_within_graphs(batch["ptr"]), atol=atol)
    # negative control: a coupling tensor replaced by a non-invariant one must fail
    key = next(k for k, g in basis.groups.items() if max(g.ls) > 0)
    basis.groups[key].coupling = torch.randn_like(basis.groups[key].coupling)
    with pytest.raises(AssertionError):
        assert_equivariant(_features(basis), (batch,), (BATCH_KINDS,), "0e", tests=("rotation",), atol=atol)


def test_force_rows_are_minus_gradient(ethanol):
    basis = ACEBasis([1, 6, 8], **SMALL).double()
    batch = batch_graphs(ethanol[:4])
    X, J = design_matrix(basis, batch, forces=True)  # [4, n_feat], [36, 3, n_feat]
    h = 1e-5
    for atom, alpha in [(0, 0), (13, 2), (35, 1)]:
        plus, minus = dict(batch), dict(batch)
        plus["positions"], minus["positions"] = batch["positions"].clone(), batch["positions"].clone()
        plus["positions"][atom, alpha] += h
        minus["positions"][atom, alpha] -= h
        fd = -(design_matrix(basis, plus, False)[0] - design_matrix(basis, minus, False)[0]) / (2 * h)  # [4, n_feat]
        graph = int(batch["batch"][atom])
        assert (fd[graph] - J[atom, alpha]).abs().max() < 1e-6 * (1 + J[atom, alpha].abs().max())
        others = [g for g in range(4) if g != graph]
        assert fd[others].abs().max() < 1e-8  # the configurations are independent
    # negative control: a wrong sign would be caught
    assert (fd[graph] + J[atom, alpha]).abs().max() > 1e-3


def test_counts_by_correlation_order():
    basis = ACEBasis([1, 6, 8], r_max=5.0, n_max=3, l_max=2, max_degree=(3, 6, 6))
    counts = basis.counts()
    assert counts[0] == 1 and counts[1] == 3 * 3  # ν = 1: A_{n z 0 0}, two-body (ACSF-like)
    # ν = 2: one invariant Σ_m A_{v,lm} A_{v',lm} per unordered pair of labels with equal l (SOAP)
    labels = [(n, z, l) for n in range(3) for z in range(3) for l in range(3)]
    pairs = [(v, w) for v, w in itertools.combinations_with_replacement(labels, 2)
             if v[2] == w[2] and v[0] + 1 + v[2] + w[0] + 1 + w[2] <= 6]
    assert counts[2] == len(pairs)
    # ν = 3 with one element, one radial function: one invariant per triangle (l1 <= l2 <= l3) with even sum
    one = ACEBasis([1], r_max=5.0, n_max=1, l_max=4, max_degree=(100, 100, 100))
    triangles = [t for t in itertools.combinations_with_replacement(range(5), 3)
                 if t[2] <= t[0] + t[1] and sum(t) % 2 == 0]
    assert one.counts()[3] == len(triangles)


def test_fit_recovers_a_linear_ace_model(ethanol):
    """Labels made by a known linear ACE model are reproduced by the fit (energies and forces)."""
    truth = LinearACE([1, 6, 8], e0s={1: -13.6, 6: -1025.3, 8: -2035.6}, **SMALL)
    torch.manual_seed(0)
    truth.coefficients = 1e-3 * torch.randn(3, truth.basis.num_basis, dtype=torch.float64)
    graphs = [dict(g) for g in ethanol[:40]]
    for g in graphs:
        out = truth(g)
        g["energy"], g["forces"] = out["energy"], out["forces"]
    model = LinearACE([1, 6, 8], e0s=truth.e0s, **SMALL).fit(graphs[:30], graphs[30:], lambdas=[1e-14, 1e-12])
    pred, ref = model.predict(graphs[30:]), batch_graphs(graphs[30:])
    assert (pred["energy"] - ref["energy"]).abs().max() < 1e-6
    assert (pred["forces"] - ref["forces"]).abs().max() < 1e-6
    # the predictions through autograd (__call__) agree with the force rows (predict)
    auto = model(batch_graphs(graphs[30:]))
    assert (auto["forces"] - pred["forces"]).abs().max() < 1e-9
    assert (auto["energy"] - pred["energy"]).abs().max() < 1e-9


def test_fit_on_real_ethanol(ethanol):
    """A small linear ACE learns rMD17 ethanol far better than the mean: a real, if rough, potential."""
    model = LinearACE([1, 6, 8], **SMALL).fit(ethanol[:60], ethanol[60:70])
    test = ethanol[70:90]
    report = mae_report(model, test)
    ref = batch_graphs(test)
    baseline_e = 1000 * float((ref["energy"] - ref["energy"].mean()).abs().mean())
    baseline_f = 1000 * float(ref["forces"].abs().mean())
    assert report["energy_mae_meV"] < 0.25 * baseline_e, (report, baseline_e)
    assert report["forces_mae_meV_per_A"] < 0.25 * baseline_f, (report, baseline_f)
    assert_model_equivariant(model, batch_graphs(test[:2]), atol=1e-9)


def test_chebyshev_radial_basis(ethanol):
    basis = ACEBasis([1, 6, 8], radial="chebyshev", r_0=1.0, **SMALL).double()
    r = torch.linspace(0.01, 6.0, 500, dtype=torch.float64)[:, None]
    R = basis.radial_functions(r)  # [500, n_max]
    assert R.abs().max() <= 1.0 + 1e-12 and R[r[:, 0] >= 5.0].abs().max() == 0  # |T_n| <= 1, zero beyond r_max
    assert torch.allclose(R[:, 0], basis.cutoff(r)[:, 0])  # T_0 = 1: the envelope itself
    batch = batch_graphs(ethanol[:2])
    assert_equivariant(_features(basis), (batch,), (BATCH_KINDS,), "0e", tests=("rotation", "reflection"), atol=1e-10)
    with pytest.raises(ValueError):
        ACEBasis([1], radial="gaussian")
