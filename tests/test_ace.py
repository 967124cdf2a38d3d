"""Tests of the linear ACE potential (minimace.ace): symmetry of the B-features, force rows, counts, the radial
basis and smoothness prior, the fit, saving/loading, the ASE calculator and the command line.

Everything runs on the bundled GFN2-xTB ethanol frames (``minimace/data``); one test fits real rMD17 ethanol
from the shared data folder (the ``shared`` fixture)."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
from ase import Atoms

from minimace.ace import ACEBasis, ACECalculator, LinearACE, agnesi, design_matrix, design_matrix_jvp, gegenbauer, \
    mae_report, main
from minimace.data import read_configurations
from minimace.datasets import bundled, bundled_dir, bundled_e0s
from minimace.graph import batch_graphs
from minimace.so3 import random_rotation
from minimace.testing import BATCH_ATOMS, BATCH_KINDS, assert_equivariant, assert_model_equivariant, \
    permutation_within_graphs

SMALL = dict(r_max=5.0, n_max=4, l_max=2, max_degree=(4, 6, 6))
AGNESI = dict(r_max=5.0, n_max=5, l_max=3, max_degree=(5, 5, 4.5), radial="agnesi", r_0=None, l_weight=1.5)


@pytest.fixture(scope="module")
def ethanol():
    """90 bundled ethanol frames (GFN2-xTB, 600 K MD) as graphs."""
    configs = [c for c in bundled("train") if c.config_type == "ethanol"][:90]
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
    graphs = [dict(g) for g in ethanol[:70]]  # 60 fitted: more rows than a near-singular 30 would give
    for g in graphs:
        out = truth(g)
        g["energy"], g["forces"] = out["energy"], out["forces"]
    model = LinearACE([1, 6, 8], e0s=truth.e0s, **SMALL).fit(graphs[:60], graphs[60:], lambdas=[1e-14, 1e-12],
                                                      prior="ridge")
    pred, ref = model.predict(graphs[60:]), batch_graphs(graphs[60:])
    assert (pred["energy"] - ref["energy"]).abs().max() < 1e-6
    assert (pred["forces"] - ref["forces"]).abs().max() < 1e-6
    # the predictions through autograd (__call__, predict) agree with the design-matrix rows of the fit
    X, J = design_matrix(model.basis, ref, forces=True)
    c = model.coefficients.reshape(-1)
    assert (J @ c - pred["forces"]).abs().max() < 1e-9
    assert (X @ c + model._e0(ref) - pred["energy"]).abs().max() < 1e-9


def _fit_far_better_than_the_mean(graphs, **kwargs):
    model = LinearACE([1, 6, 8], **SMALL).fit(graphs[:60], graphs[60:70], **kwargs)
    test = graphs[70:90]
    report = mae_report(model, test)
    ref = batch_graphs(test)
    baseline_e = 1000 * float((ref["energy"] - ref["energy"].mean()).abs().mean())
    baseline_f = 1000 * float(ref["forces"].abs().mean())
    assert report["energy_mae_meV"] < 0.25 * baseline_e, (report, baseline_e)
    assert report["forces_mae_meV_per_A"] < 0.25 * baseline_f, (report, baseline_f)
    assert report["forces_rmse_meV_per_A"] >= report["forces_mae_meV_per_A"]
    assert_model_equivariant(model, batch_graphs(test[:2]), atol=1e-9)
    return model


def test_fit_on_bundled_ethanol(ethanol):
    """A small linear ACE learns the bundled xTB ethanol far better than the mean."""
    _fit_far_better_than_the_mean(ethanol)


@pytest.mark.shared_data("botnet_ethanol")
def test_fit_on_real_ethanol(shared):
    """The same on rMD17 ethanol (PBE/def2-SVP) from the shared data folder: a real, if rough, potential."""
    configs = read_configurations(shared / "botnet_ethanol" / "train.xyz", index=":90")
    _fit_far_better_than_the_mean([c.to_graph(5.0) for c in configs])


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


def test_agnesi_radial_basis():
    """Agnesi transform: x(0) = 1, x(r_max) = -1, monotone; R_n orthonormal in x; R_n and R_n' vanish at r_max."""
    basis = ACEBasis([1, 6, 8], **AGNESI).double()
    r0 = torch.tensor(1.1, dtype=torch.float64)
    y = agnesi(torch.linspace(0.0, 5.0, 400, dtype=torch.float64), r0)
    assert y[0] == 1.0 and (y.diff() < 0).all()
    # Gegenbauer λ = 4.5 (weight (1-x²)^4): Gauss–Legendre quadrature of Ĉ_m Ĉ_n (1-x²)^4 is the identity
    x, w = np.polynomial.legendre.leggauss(40)
    x, w = torch.tensor(x), torch.tensor(w)
    C = gegenbauer(x, 8, 4.5)  # [40, 8]
    gram = (C * (w * (1 - x**2) ** 4)[:, None]).T @ C
    assert torch.allclose(gram, torch.eye(8, dtype=torch.float64), atol=1e-12)
    assert not torch.allclose(gegenbauer(x, 8, 2.5).T @ (C * w[:, None]), torch.eye(8, dtype=torch.float64), atol=1e-3)
    r = torch.linspace(0.3, 5.0, 300, dtype=torch.float64)[:, None].requires_grad_(True)
    R = basis.radial_functions(r, torch.full_like(r, 1.1))  # [300, n_max]
    (dR,) = torch.autograd.grad(R.sum(), r)
    assert R[-1].abs().max() < 1e-12 and dR[-1].abs().max() < 1e-10
    assert R[:-1].abs().max() > 0.1  # not identically zero
    # one r_0 per element pair: a C–H bond and an H–H pair at the same distance see different radial functions
    assert torch.allclose(basis.pair_r_0, basis.pair_r_0.T) and basis.pair_r_0[0, 1] != basis.pair_r_0[0, 0]


def test_agnesi_features_invariant(ethanol):
    basis = ACEBasis([1, 6, 8], **AGNESI).double()
    batch = batch_graphs(ethanol[:3])
    assert_equivariant(_features(basis), (batch,), (BATCH_KINDS,), "0e", atoms_in=(BATCH_ATOMS,), atoms_out="atoms",
                       permutation=permutation_within_graphs(batch["ptr"]), atol=1e-10)


def test_total_degree_and_smoothness_prior():
    """Degree n + 1 + l / w_L selects the basis; γ grows with n and l; the constant is not penalised more than 1."""
    basis = ACEBasis([1, 6], r_max=5.0, n_max=6, l_max=4, max_degree=(6, 6, 6), l_weight=1.5)
    for group in basis.groups.values():
        for channels in group.channels:
            degree = sum(k // 2 + 1 + l / 1.5 for k, l in zip(channels, group.ls))
            assert degree <= basis.max_degree[len(group.ls) - 1] + 1e-9
    assert basis.counts() != ACEBasis([1, 6], r_max=5.0, n_max=6, l_max=4, max_degree=(6, 6, 6)).counts()
    gamma = basis.smoothness(4.0)
    assert gamma.shape == (basis.num_basis,) and gamma[0] == 1.0 and (gamma >= 1.0).all()
    first = next(g for g in basis.groups.values() if len(g.ls) == 1)  # ν = 1: (n + 1)^4 for n = 0, 1, ...
    assert torch.equal(gamma[1 : 1 + len(first.channels)],
                       torch.tensor([float((k // 2 + 1) ** 4) for (k,) in first.channels], dtype=torch.float64))


def test_lambda_chosen_on_validation(ethanol):
    """The λ kept is the argmin of the validation loss, and every λ's validation errors are recorded."""
    model = LinearACE([1, 6, 8], **AGNESI).fit(ethanol[:40], ethanol[40:50], lambdas=[1e-8, 1e-5, 1e-2, 10.0])
    losses = model.fit_info["validation_loss"]
    assert model.fit_info["lambda"] == min(losses, key=losses.get) and len(set(losses.values())) == 4
    assert set(model.fit_info["validation_errors"]) == set(losses)
    with pytest.raises(ValueError, match="prior"):
        model.fit(ethanol[:40], ethanol[40:50], prior="gaussian")


def test_saved_model_is_an_ase_calculator(ethanol, tmp_path):
    """save → load → ASE calculator: same energies; forces = −∂E/∂r (finite differences); rotation invariant."""
    model = LinearACE([1, 6, 8], e0s=bundled_e0s(), **AGNESI).fit(ethanol[:40], ethanol[40:50])
    model.save(tmp_path / "ace.pt")
    loaded = LinearACE.load(tmp_path / "ace.pt")
    assert loaded.basis.config == model.basis.config and torch.equal(loaded.coefficients, model.coefficients)
    config = [c for c in bundled("test") if c.config_type == "ethanol"][0]
    atoms = Atoms(numbers=config.atomic_numbers, positions=config.positions)
    atoms.calc = ACECalculator(tmp_path / "ace.pt")
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    assert abs(energy - float(model.predict([config.to_graph(5.0)])["energy"][0])) < 1e-9
    h = 1e-5
    for atom, alpha in [(0, 0), (4, 2), (8, 1)]:
        shifted = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, alpha] += sign * h
            moved.calc = ACECalculator(loaded)
            shifted.append(moved.get_potential_energy())
        fd = -(shifted[0] - shifted[1]) / (2 * h)
        assert abs(fd - forces[atom, alpha]) < 1e-6 * (1 + abs(forces[atom, alpha]))
        assert abs(fd + forces[atom, alpha]) > 1e-4  # negative control: the wrong sign is caught
    rotation = random_rotation(generator=torch.Generator().manual_seed(3)).numpy()
    rotated = Atoms(numbers=atoms.numbers, positions=atoms.positions @ rotation.T + 1.7)
    rotated.calc = ACECalculator(loaded)
    assert abs(rotated.get_potential_energy() - energy) < 1e-9
    assert np.abs(rotated.get_forces() - forces @ rotation.T).max() < 1e-9
    with pytest.raises(ValueError, match="not a minimace LinearACE"):
        torch.save({"x": 1}, tmp_path / "other.pt")
        LinearACE.load(tmp_path / "other.pt")


def test_command_line_on_any_extxyz(tmp_path):
    """``python -m minimace.ace --train-file --test-file --json`` writes the documented keys."""
    out = tmp_path / "result.json"
    main(["--train-file", str(bundled_dir() / "train.xyz"), "--test-file", str(bundled_dir() / "test.xyz"),
          "--e0s-file", str(bundled_dir() / "isolated_atoms.xyz"), "--n-train", "40", "--n-valid", "10",
          "--n-test", "10", "--n-max", "4", "--l-max", "2", "--max-degree", "4", "5", "4", "--json", str(out),
          "--save", str(tmp_path / "m.pt")])
    result = json.loads(out.read_text())
    for key in ("test_E_MAE_meV", "test_F_MAE_meV_per_A", "test_E_RMSE_meV", "test_F_RMSE_meV_per_A", "n_basis",
                "fit_seconds"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["n_basis"] == LinearACE.load(tmp_path / "m.pt").coefficients.numel()
    with pytest.raises(SystemExit):
        main(["--n-train", "10"])  # neither NAME nor --train-file


@pytest.mark.parametrize("system", ["ethanol", "ethanol_absent_elements", "water_box"])
def test_product_rule_force_rows_match_autodiff(ethanol, system):
    """The product-rule force rows equal the forward-mode derivative rows, also for periodic cells (image shifts)
    and for a basis with elements that the batch lacks (N, F: their neighbour channels and centre slots)."""
    if system.startswith("ethanol"):
        graphs, elements = ethanol[:3], [1, 6, 7, 8, 9] if system.endswith("elements") else [1, 6, 8]
    else:
        graphs, elements = [c.to_graph(3.0) for c in bundled("water_box", index=":2")], [1, 8]
        assert graphs[0]["shifts"].abs().sum() > 0  # edges through periodic images
    basis = ACEBasis(elements, **dict(AGNESI, r_max=3.0 if system == "water_box" else 5.0)).double()
    batch = batch_graphs(graphs)
    X, J = design_matrix(basis, batch, forces=True, atom_chunk=5)  # several atom chunks
    X_ref, J_ref = design_matrix_jvp(basis, batch, forces=True)
    assert (X - X_ref).abs().max() < 1e-10 * (1 + X_ref.abs().max())
    assert (J - J_ref).abs().max() < 1e-10 * (1 + J_ref.abs().max())
    assert (J.reshape(-1) - J_ref.reshape(-1).flip(0)).abs().max() > 1e-3  # the comparison can fail


def test_regularised_solve_in_place_cholesky():
    """The in-place LAPACK solve equals a dense solve, and reports an indefinite matrix instead of solving it."""
    from minimace.ace import _regularised_solve, _symmetric

    torch.manual_seed(1)
    A = torch.randn(300, 40, dtype=torch.float64)
    G, b, penalty = A.T @ A, torch.randn(40, dtype=torch.float64), torch.full((40,), 1e-3, dtype=torch.float64)
    c = _regularised_solve(G, b, penalty, torch.empty_like(G))
    assert torch.allclose(c, torch.linalg.solve(G + torch.diag(penalty), b), rtol=1e-10, atol=1e-12)
    indefinite = G - 2 * torch.linalg.eigvalsh(G)[0].abs() * torch.eye(40, dtype=torch.float64) - 1.0
    assert _regularised_solve(indefinite, b, 0 * penalty, torch.empty_like(G)) is None
    # the syrk triangle made whole: the lower triangle of A^T A (Fortran order) becomes the full matrix
    from scipy.linalg.blas import dsyrk

    lower = dsyrk(1.0, A.numpy().T, lower=1)
    assert torch.equal(_symmetric(lower, block=7), _symmetric(dsyrk(1.0, A.numpy().T, lower=1), block=64))
    assert torch.allclose(_symmetric(dsyrk(1.0, A.numpy().T, lower=1), block=7), G, rtol=1e-13, atol=1e-12)


def test_solve_in_the_memory_of_the_upper_triangle():
    """The one-matrix solve equals a dense solve for every λ in turn (the upper triangle survives each
    factorisation), and reports an indefinite matrix instead of solving it."""
    from scipy.linalg.blas import dsyrk

    from minimace.ace import _solve_from_upper

    torch.manual_seed(2)
    A = torch.randn(300, 50, dtype=torch.float64)
    G, b = A.T @ A, torch.randn(50, dtype=torch.float64)
    F = dsyrk(1.0, A.numpy().T, lower=0)  # Fortran order, G in the upper triangle, zeros below
    diag = torch.from_numpy(F.diagonal().copy())
    for lam in (1e-3, 1e-1, 10.0, 1e-3):
        penalty = torch.linspace(0.5, 2.0, 50, dtype=torch.float64) * lam
        c = _solve_from_upper(F, diag, b, penalty, block=16)
        assert torch.allclose(c, torch.linalg.solve(G + torch.diag(penalty), b), rtol=1e-10, atol=1e-12)
    assert torch.allclose(torch.from_numpy(np.triu(F, 1)), torch.triu(G, 1), rtol=1e-14, atol=1e-12)
    shift = float(torch.linalg.eigvalsh(G)[0]) + 1.0  # G - shift I: one negative eigenvalue, positive diagonal
    assert float(diag.min()) > shift
    assert _solve_from_upper(F, diag, b, torch.full((50,), -shift, dtype=torch.float64)) is None
    assert _solve_from_upper(F, diag, b, -2 * diag) is None  # a negative diagonal
    c = _solve_from_upper(F, diag, b, torch.full((50,), 1e-3, dtype=torch.float64))  # usable after a failure
    assert torch.allclose(c, torch.linalg.solve(G + 1e-3 * torch.eye(50, dtype=torch.float64), b), rtol=1e-10)


def test_weighted_normal_equations_give_the_two_matrix_solution(ethanol):
    """Accumulating the weighted normal matrix directly (one matrix, what fit does) gives the coefficients of the
    separate energy and force matrices, and refuses other weights than it was accumulated with."""
    model = LinearACE([1, 6, 8], **AGNESI)
    train, valid = ethanol[:6], ethanol[6:9]
    rows = model.validation_rows(valid)
    two = model.normal_equations(train)
    G_two = 900.0 * two["GE"] + two["GF"]
    one = model.normal_equations(train, weights=(30.0, 1.0))
    upper = torch.from_numpy(np.triu(one["G_upper"]))
    assert (upper - torch.triu(G_two)).abs().max() < 1e-12 * G_two.abs().max()
    assert (one["b"] - (900.0 * two["bE"] + two["bF"])).abs().max() < 1e-12 * one["b"].abs().max()
    c_two, info_two = model.solve(two, rows, 30.0, 1.0, [1e-4, 1e-2], prior="ridge")
    with pytest.raises(ValueError, match="weighted with"):
        model.solve(dict(one), rows, 10.0, 1.0, [1e-8], prior="ridge")
    c_one, info_one = model.solve(one, rows, 30.0, 1.0, [1e-4, 1e-2], prior="ridge")
    assert info_one["lambda"] == info_two["lambda"]
    assert (c_one - c_two).abs().max() < 1e-8 * c_two.abs().max()
    assert "G_upper" not in one  # consumed


def test_body_order_five_features_invariant_and_force_rows(ethanol):
    """ν = 4 (body order 5, the defaults' highest order): invariant B-functions, and product-rule force rows equal
    to the automatic-differentiation ones."""
    basis = ACEBasis([1, 6, 8], r_max=5.0, n_max=3, l_max=2, max_degree=(3, 4, 5, 6)).double()
    assert basis.counts()[4] > 0 and any(len(g.ls) == 4 and max(g.ls) > 0 for g in basis.groups.values())
    batch = batch_graphs(ethanol[:2])
    assert_equivariant(_features(basis), (batch,), (BATCH_KINDS,), "0e", atoms_in=(BATCH_ATOMS,), atoms_out="atoms",
                       permutation=permutation_within_graphs(batch["ptr"]), atol=1e-11)
    X, J = design_matrix(basis, batch, forces=True, atom_chunk=4)
    X_ref, J_ref = design_matrix_jvp(basis, batch, forces=True)
    assert (J - J_ref).abs().max() < 1e-10 * (1 + J_ref.abs().max())
    key = next(k for k, g in basis.groups.items() if len(g.ls) == 4 and max(g.ls) > 0)
    basis.groups[key].coupling = torch.randn_like(basis.groups[key].coupling)  # negative control
    with pytest.raises(AssertionError):
        assert_equivariant(_features(basis), (batch,), (BATCH_KINDS,), "0e", tests=("rotation",), atol=1e-11)
