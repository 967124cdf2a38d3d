"""Training: the loss, EMA, reproducibility, exact resumption, NaN handling, time budget, run outputs."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import ase.io
import pytest
import torch
from ase.build import molecule

from minimace.checkpoint import load_checkpoint, load_model
from minimace.datasets import BUNDLED_SPLITS, bundled_dir, bundled_e0s
from minimace.graph import atoms_to_graph, batch_graphs
from minimace.model import MACE
from minimace.train import (
    ExponentialMovingAverage,
    TrainConfig,
    TrainingDiverged,
    error_table,
    evaluate,
    loss_terms,
    predict,
    train,
    weighted_loss,
)

ROOT = Path(__file__).resolve().parents[1]
E0 = bundled_e0s()  # GFN2-xTB isolated atoms of the bundled set (minimace/data/isolated_atoms.xyz)
TINY = dict(r_max=4.0, num_bessel=6, num_polynomial_cutoff=5, max_ell=2, correlation=2, num_interactions=2,
            hidden_irreps="8x0e+8x1o", MLP_irreps="8x0e", radial_MLP=[16], avg_num_neighbors=7.0,
            atomic_numbers=[1, 6, 8], atomic_energies=[E0[1], E0[6], E0[8]], atomic_inter_shift=-5.0)
FAST = dict(max_epochs=2, batch_size=4, valid_batch_size=8, forces_weight=100.0, progress=False,
            scheduler_patience=1)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    return MACE(**{**TINY, **kw})


def ethanol_file(split="train"):
    """The bundled GFN2-xTB file of ``split`` ("train" or "test"); its first configurations are ethanol."""
    return bundled_dir() / BUNDLED_SPLITS[split]


def load_ethanol():
    """12 training and 4 validation configurations of ethanol (bundled GFN2-xTB set: runs on any clone)."""
    atoms = ase.io.read(ethanol_file(), ":16")
    assert all(a.get_chemical_formula() == "C2H6O" for a in atoms)
    graphs = [atoms_to_graph(a, TINY["r_max"]) for a in atoms]
    return graphs[:12], graphs[12:]


@pytest.fixture(scope="module")
def ethanol():
    return load_ethanol()


def _quiet(*args):
    pass


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------------ loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_is_the_paper_formula(dtype):
    structures = [molecule("H2O"), molecule("CH3OH"), molecule("CH3CH2OH")]
    gen = torch.Generator().manual_seed(0)
    for a in structures:
        a.info["energy"] = float(torch.randn(1, generator=gen))
        a.arrays["forces"] = torch.randn(len(a), 3, generator=gen).double().numpy()
    structures[1].info["config_forces_weight"] = 0.5
    batch = batch_graphs([atoms_to_graph(a, 4.0, dtype=dtype) for a in structures])
    pred = {"energy": torch.randn(3, generator=gen).to(dtype), "forces": torch.randn(len(batch["batch"]), 3,
                                                                                     generator=gen).to(dtype)}
    loss = weighted_loss(loss_terms(pred, batch), {"energy": 1.0, "forces": 1000.0})
    # by hand: λ_E/B Σ ((Ê−E)/N)² + λ_F/(3N) Σ w (F̂−F)²
    n = torch.tensor([3.0, 6.0, 9.0], dtype=dtype)
    e_term = (((pred["energy"] - batch["energy"]) / n) ** 2).mean()
    w = torch.tensor([1.0] * 3 + [0.5] * 6 + [1.0] * 9, dtype=dtype)
    f_term = (w[:, None] * (pred["forces"] - batch["forces"]) ** 2).sum() / (3 * 18)
    expected = e_term + 1000 * f_term
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(loss, expected, rtol=tol, atol=0)
    # negative control: a loss that forgets the per-atom division differs
    wrong = ((pred["energy"] - batch["energy"]) ** 2).mean() + 1000 * f_term
    assert not torch.isclose(loss, wrong, rtol=1e-3)


def test_loss_of_a_split_batch_with_global_counts_adds_up():
    """The distributed loss: each part divided by the counts of the whole batch sums to the whole's loss."""
    structures = [molecule(name) for name in ("H2O", "CH3OH", "CH3CH2OH", "CH4")]
    gen = torch.Generator().manual_seed(1)
    graphs = []
    for a in structures:
        a.info["energy"] = float(torch.randn(1, generator=gen))
        a.arrays["forces"] = torch.randn(len(a), 3, generator=gen).double().numpy()
        graphs.append(atoms_to_graph(a, 4.0))
    weights = {"energy": 1.0, "forces": 10.0}

    def pred_of(batch):
        n_atoms = batch["ptr"][1:] - batch["ptr"][:-1]
        return {"energy": batch["energy"] + 0.1 * n_atoms**2, "forces": 1.1 * batch["forces"]}

    whole = batch_graphs(graphs)
    full = weighted_loss(loss_terms(pred_of(whole), whole), weights)
    parts = [batch_graphs(graphs[:1]), batch_graphs(graphs[1:])]
    terms = [loss_terms(pred_of(b), b) for b in parts]
    counts = {k: terms[0][k] + terms[1][k] for k in terms[0] if k.endswith("_count")}
    torch.testing.assert_close(sum(weighted_loss(t, weights, counts) for t in terms), full, rtol=1e-12, atol=0)
    # negative control: averaging the parts' own losses is not the same (different sizes)
    local = sum(weighted_loss(t, weights) for t in terms) / 2
    assert not torch.isclose(local, full, rtol=1e-3)


def test_validation_loss_equals_the_loss_of_one_batch(ethanol):
    _, valid_g = ethanol
    model = tiny_model().double()
    weights = {"energy": 1.0, "forces": 100.0}
    loss, metrics = evaluate(model, valid_g, weights, batch_size=3)  # batches of 3 + 1, summed
    batch = batch_graphs(valid_g)
    direct = weighted_loss(loss_terms(model(batch), batch), weights).item()
    assert loss == pytest.approx(direct, rel=1e-12)
    assert metrics["n_configs"] == len(valid_g)


def test_ema_formula_and_swap():
    lin = torch.nn.Linear(2, 1).double()
    ema = ExponentialMovingAverage(lin, decay=0.99)
    w0 = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update(lin)
    d = min(0.99, 2 / 11)  # warm-up of the first update
    torch.testing.assert_close(ema.shadow["weight"], d * w0 + (1 - d) * (w0 + 1), rtol=0, atol=1e-15)
    raw = lin.weight.detach().clone()
    ema.swap(lin)
    torch.testing.assert_close(lin.weight.detach(), d * w0 + (1 - d) * (w0 + 1), rtol=0, atol=1e-15)
    ema.swap(lin)
    assert torch.equal(lin.weight.detach(), raw)


def test_config_errors_name_the_option():
    for bad, name in [({"optimizer": "sgd"}, "optimizer"), ({"batch_size": 0}, "batch_size"),
                      ({"ema_decay": 1.5}, "ema_decay"), ({"swa_start": -1}, "swa_start"),
                      ({"dtype": "float16"}, "dtype"), ({"lr": float("nan")}, "lr")]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="unknown training option.*'learning_rate'"):
        TrainConfig.from_dict({"learning_rate": 0.1})


# ------------------------------------------------------------------------------------------------ runs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_reduces_the_loss_and_writes_the_run(ethanol, tmp_path, dtype):
    train_g, valid_g = ethanol
    model = tiny_model()
    before = predict(model.to(getattr(torch, dtype)), valid_g, 8, "cpu", getattr(torch, dtype))
    config = TrainConfig(**{**FAST, "max_epochs": 3, "dtype": dtype, "lr": 0.02})
    result = train(model, train_g, valid_g, config, run_dir=tmp_path, test_sets={"test": valid_g[:2]}, log=_quiet)
    assert all(p.dtype == getattr(torch, dtype) for p in model.parameters())
    losses = [row["valid_loss"] for row in result["history"]]
    assert losses[-1] < losses[0], losses
    f_before = (before["pred_forces"] - before["ref_forces"]).abs().mean().item() * 1000
    assert result["metrics"]["valid"]["F_mae"] < f_before
    for name in ("checkpoint.pt", "best.pt", "log.csv", "errors.txt", "errors.csv", "parity.png",
                 "learning_curves.png"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "parity.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 1 + 3
    table = (tmp_path / "errors.txt").read_text()
    assert table.splitlines()[0].split()[:2] == ["split", "configs"] and "test" in table
    # best.pt holds the final (best, averaged) weights the function returned the model with
    best = load_model(tmp_path / "best.pt")
    p1, p2 = (predict(m, valid_g, 8, "cpu", getattr(torch, dtype)) for m in (model, best))
    assert torch.equal(p1["pred_energy"], p2["pred_energy"])
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == result["best_epoch"]


def test_same_seed_same_numbers(ethanol):
    train_g, valid_g = ethanol
    runs = []
    for seed in (7, 7, 8):
        model = tiny_model()
        result = train(model, train_g, valid_g, TrainConfig(**FAST, seed=seed), log=_quiet)
        runs.append((_params(model), [row["train_loss"] for row in result["history"]]))
    assert runs[0][1] == runs[1][1]
    assert all(torch.equal(runs[0][0][k], runs[1][0][k]) for k in runs[0][0])
    assert runs[0][1] != runs[2][1]  # negative control: another seed shuffles differently


@pytest.mark.parametrize("scheduler", ["plateau", "exponential"])
def test_resume_continues_exactly(ethanol, tmp_path, scheduler):
    train_g, valid_g = ethanol
    base = dict(FAST, max_epochs=3, swa_start=2, scheduler=scheduler, lr_gamma=0.9)
    whole = tiny_model()
    r_whole = train(whole, train_g, valid_g, TrainConfig(**base), run_dir=tmp_path / "whole", log=_quiet)
    first = tiny_model()
    train(first, train_g, valid_g, TrainConfig(**{**base, "max_epochs": 2}), run_dir=tmp_path / "part", log=_quiet)
    mid = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert mid["run_state"]["epoch"] == 2  # the third epoch, resumed below, is in stage two
    resumed = tiny_model(seed=99)  # other initial weights: everything must come from the checkpoint
    r_resumed = train(resumed, train_g, valid_g, TrainConfig(**base), run_dir=tmp_path / "part",
                      restart=tmp_path / "part" / "checkpoint.pt", log=_quiet)
    w, r = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("whole", "part"))
    for key in ("model_state",):
        assert all(torch.equal(w[key][k], r[key][k]) for k in w[key])
    assert all(torch.equal(w["ema_state"]["shadow"][k], r["ema_state"]["shadow"][k]) for k in w["ema_state"]["shadow"])
    strip = lambda h: [{k: v for k, v in row.items() if k != "time_s"} for row in h]  # noqa: E731
    assert strip(r_whole["history"]) == strip(r_resumed["history"])
    assert all(torch.equal(a, b) for a, b in zip(_params(whole).values(), _params(resumed).values()))
    # negative control: a restart without the optimizer state does not continue exactly
    mid["optimizer_state"]["state"] = {}
    torch.save(mid, tmp_path / "no_opt.pt")
    broken = tiny_model()
    train(broken, train_g, valid_g, TrainConfig(**base), restart=tmp_path / "no_opt.pt", log=_quiet)
    assert not all(torch.equal(a, b) for a, b in zip(_params(whole).values(), _params(broken).values()))


class _FaultyMACE(MACE):
    """Returns NaN energies from the ``fail_at``-th training call on (a stand-in for a diverging run)."""

    fail_at = 5

    def forward(self, batch, compute_forces=True, compute_stress=False, training=False):
        out = super().forward(batch, compute_forces, compute_stress, training)
        if training:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls >= self.fail_at:
                out["energy"] = out["energy"] * float("nan")
        return out


def test_nan_loss_stops_with_epoch_batch_and_configs(ethanol, tmp_path):
    train_g, valid_g = ethanol
    torch.manual_seed(0)
    model = _FaultyMACE(**TINY)  # 3 batches per epoch: the 5th call is epoch 1, batch 1
    names = [f"train.xyz, frame {k}" for k in range(len(train_g))]
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, batch 1 \(training configurations "
                                               r"\[\d+, \d+, \d+, \d+\]: train.xyz, frame \d+; train.xyz"):
        train(model, train_g, valid_g, TrainConfig(**{**FAST, "max_epochs": 3}), run_dir=tmp_path, log=_quiet,
              train_names=names)
    state = load_checkpoint(tmp_path / "checkpoint.pt")  # the last good checkpoint is kept
    assert state["run_state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model_state"].values() if v.is_floating_point())
    # negative control: the same model without the fault trains through
    model = MACE(**TINY)
    train(model, train_g, valid_g, TrainConfig(**{**FAST, "max_epochs": 2}), log=_quiet)


def test_time_budget_stops_the_run(ethanol):
    train_g, valid_g = ethanol
    result = train(tiny_model(), train_g, valid_g, TrainConfig(**{**FAST, "max_epochs": 50, "time_budget": 1e-5}),
                   log=_quiet)
    assert result["stopped"] == "time_budget" and len(result["history"]) == 1


def test_error_table_lists_splits():
    table = error_table({"valid": {"n_configs": 3, "E_mae": 1.0, "F_mae": 2.5}, "test": {"n_configs": 4,
                                                                                          "E_mae": 3.0}})
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["split", "configs", "E", "MAE"] and len(lines) == 4
    assert lines[3].split()[-1] == "-"  # no force error for that split


# ------------------------------------------------------------------------------------------------ kill -9

_TRAIN_AND_STALL = textwrap.dedent("""
    import os, sys, time, torch
    sys.path.insert(0, {tests!r})
    import test_train as t
    import minimace.checkpoint as ck
    train_g, valid_g = t.load_ethanol()
    real_save, calls = ck.torch.save, [0]
    def stall_second_checkpoint(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        if isinstance(obj, dict) and obj.get("kind") == "training":
            calls[0] += 1
            if calls[0] == 2:  # epoch 2's checkpoint: bytes written, file not yet renamed
                print("WRITING", flush=True)
                time.sleep(120)
    ck.torch.save = stall_second_checkpoint
    t.train(t.tiny_model(), train_g, valid_g, t.TrainConfig(**{{**t.FAST, "max_epochs": 3}}), run_dir=sys.argv[1],
            log=t._quiet)
""")


def test_kill_during_checkpoint_write_then_resume(ethanol, tmp_path):
    train_g, valid_g = ethanol
    script = _TRAIN_AND_STALL.format(tests=str(ROOT / "tests"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)
    try:
        line = proc.stdout.readline().strip()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert line == "WRITING" and proc.returncode == -signal.SIGKILL
    state = load_checkpoint(tmp_path / "checkpoint.pt")  # the last complete one: after epoch 1
    assert state["run_state"]["epoch"] == 1
    resumed = tiny_model(seed=5)
    train(resumed, train_g, valid_g, TrainConfig(**{**FAST, "max_epochs": 3}), run_dir=tmp_path,
          restart=tmp_path / "checkpoint.pt", log=_quiet)
    whole = tiny_model()
    train(whole, train_g, valid_g, TrainConfig(**{**FAST, "max_epochs": 3}), run_dir=tmp_path / "whole", log=_quiet)
    assert all(torch.equal(a, b) for a, b in zip(_params(whole).values(), _params(resumed).values()))


def test_predict_reports_the_isolated_atom_part(ethanol):
    _, valid_g = ethanol
    p = predict(tiny_model().double(), valid_g, 3)
    e0 = dict(zip(TINY["atomic_numbers"], TINY["atomic_energies"]))
    by_hand = torch.tensor([sum(e0[int(z)] for z in g["atomic_numbers"]) for g in valid_g], dtype=torch.float64)
    torch.testing.assert_close(p["e0_energy"], by_hand, rtol=1e-14, atol=0)
    assert p["pred_forces"].shape == p["ref_forces"].shape == (sum(len(g["batch"]) for g in valid_g), 3)


def test_periodic_cells_with_stress(tmp_path):
    """Water boxes with stress labels: the stress term enters the loss and the metrics."""
    from minimace.datasets import bundled

    graphs = [c.to_graph(TINY["r_max"]) for c in bundled("water_box", index=":6")]
    assert all("stress" in g for g in graphs)
    model = tiny_model()
    config = TrainConfig(**{**FAST, "max_epochs": 1, "stress_weight": 10.0})
    result = train(model, graphs[:4], graphs[4:], config, log=_quiet)
    assert "S_mae" in result["metrics"]["valid"] and "valid_loss" in result["history"][0]
    p = result["predictions"]["valid"]
    batch = batch_graphs(graphs[4:])
    pred = model(batch, compute_forces=True, compute_stress=True)
    torch.testing.assert_close(p["pred_stress"], pred["stress"].detach(), rtol=1e-10, atol=1e-12)
    # the stress weight changes the loss: a zero weight gives a smaller validation loss
    from minimace.train import loss_from_predictions

    with_s = loss_from_predictions(p, {"energy": 1.0, "forces": 100.0, "stress": 10.0})
    without = loss_from_predictions(p, {"energy": 1.0, "forces": 100.0, "stress": 0.0})
    assert with_s > without
