"""The GPU path: model, forces, stress, a training step, a checkpoint round trip and equivariance on a device.

Marked ``cuda``: run where CUDA is available, skipped elsewhere. ``MINIMACE_TEST_DEVICE`` chooses the device
(``cuda``, ``cuda:1``, or ``cpu`` to run the same code on the CPU, as ``benchmarks/gpu_check.sh`` does in its
dry-run): ``MINIMACE_TEST_DEVICE=cpu pytest -m cuda tests/test_cuda.py``. Only bundled data are used (a GPU
machine has no shared data folder). References are computed on the CPU in float64.
"""

import os

import pytest
import torch

from minimace.calculator import MiniMACECalculator
from minimace.checkpoint import load_checkpoint, load_model
from minimace.data import read_configurations
from minimace.datasets import bundled_dir
from minimace.graph import batch_graphs, to_device
from minimace.model import MACE
from minimace.testing import assert_model_equivariant
from minimace.train import TrainConfig, train

DEVICE = os.environ.get("MINIMACE_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    DEVICE is None, reason="no CUDA device (MINIMACE_TEST_DEVICE=cpu runs these tests on the CPU)")]

R_MAX = 4.0
E0 = {1: -13.6, 6: -1029.0, 8: -2042.0}
SMALL = dict(r_max=R_MAX, num_bessel=6, num_polynomial_cutoff=5, max_ell=2, correlation=3, num_interactions=2,
             hidden_irreps="16x0e+16x1o", MLP_irreps="8x0e", radial_MLP=[16, 16], avg_num_neighbors=8.0,
             atomic_numbers=[1, 6, 8], atomic_energies=[E0[1], E0[6], E0[8]])
FAST = dict(max_epochs=2, batch_size=4, valid_batch_size=8, forces_weight=100.0, stress_weight=10.0,
            progress=False, scheduler_patience=1)
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}


def small_model(seed=0):
    torch.manual_seed(seed)
    return MACE(**SMALL)


@pytest.fixture(scope="module")
def configs():
    """Ethanol/methanol/water molecules and two periodic water boxes (with stress) of the bundled set."""
    return (read_configurations(bundled_dir() / "train.xyz", index=":10")
            + read_configurations(bundled_dir() / "water_box.xyz", index=":2"))


@pytest.fixture(scope="module")
def batch(configs):
    return batch_graphs([c.to_graph(R_MAX) for c in configs[:3] + configs[-2:]])


def _run(model, batch, device, dtype):
    out = model.to(device=device, dtype=dtype)(to_device(batch, device, dtype), compute_forces=True,
                                               compute_stress=True)
    return {k: v.detach().cpu().double() for k, v in out.items()}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_energy_forces_stress_on_device_equal_the_cpu(batch, dtype):
    model = small_model()
    ref = _run(model, batch, "cpu", torch.float64)
    out = _run(model, batch, DEVICE, dtype)
    for key in ("energy", "forces", "stress", "virials", "node_energy"):
        scale = ref[key].abs().max().item()
        torch.testing.assert_close(out[key], ref[key], rtol=0, atol=TOL[dtype]["atol"] * max(scale, 1.0), msg=key)
    assert ref["stress"][-1].abs().max() > 1e-6 and ref["forces"].abs().max() > 1e-3  # non-trivial outputs


def test_forces_are_minus_the_energy_gradient_on_device(configs):
    model = small_model().to(device=DEVICE, dtype=torch.float64)
    g = to_device(batch_graphs([configs[0].to_graph(R_MAX)]), DEVICE, torch.float64)
    forces = model(g)["forces"]
    h = 1e-5
    for atom, axis in ((0, 0), (3, 2), (8, 1)):
        plus, minus = dict(g), dict(g)
        plus["positions"], minus["positions"] = g["positions"].clone(), g["positions"].clone()
        plus["positions"][atom, axis] += h
        minus["positions"][atom, axis] -= h
        numeric = -(model(plus)["energy"] - model(minus)["energy"]).item() / (2 * h)
        assert abs(numeric - forces[atom, axis].item()) < 1e-6, (atom, axis)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_equivariance_on_device(batch, dtype):
    model = small_model().to(device=DEVICE, dtype=dtype)
    report = assert_model_equivariant(lambda b: model(b, compute_stress=True), to_device(batch, DEVICE, dtype))
    assert not report.failures, str(report)


def test_training_on_device_equals_the_cpu_and_resumes(configs, tmp_path):
    """Two epochs with the edge-budget batches, on the device and on the CPU: the same weights; a run
    resumed from its epoch-1 checkpoint on the device ends where the uninterrupted one does."""
    graphs = [c.to_graph(R_MAX) for c in configs]
    train_g, valid_g = graphs[:5] + graphs[10:11], graphs[8:9] + graphs[11:]  # a periodic box in each
    cfg = dict(FAST, max_edges_per_batch=1000, dtype="float64")
    on_cpu, on_device = small_model(), small_model()
    train(on_cpu, train_g, valid_g, TrainConfig(**cfg, device="cpu"), log=lambda *a: None)
    result = train(on_device, train_g, valid_g, TrainConfig(**cfg, device=DEVICE), run_dir=tmp_path / "dev",
                   log=lambda *a: None)
    assert [row["steps"] for row in result["history"]] == [2, 2]
    for k, v in on_cpu.state_dict().items():
        torch.testing.assert_close(on_device.state_dict()[k].cpu(), v, rtol=1e-8, atol=1e-10, msg=k)
    assert max((on_cpu.state_dict()[k] - v).abs().max().item() for k, v in small_model().state_dict().items()
               if v.is_floating_point()) > 1e-4  # training moved the weights
    dev = load_checkpoint(tmp_path / "dev" / "checkpoint.pt")
    train(small_model(), train_g, valid_g, TrainConfig(**{**cfg, "max_epochs": 1}, device=DEVICE),
          run_dir=tmp_path / "half", log=lambda *a: None)
    train(small_model(), train_g, valid_g, TrainConfig(**cfg, device=DEVICE), run_dir=tmp_path / "half",
          restart=tmp_path / "half" / "checkpoint.pt", log=lambda *a: None)
    resumed = load_checkpoint(tmp_path / "half" / "checkpoint.pt")
    for k, v in dev["model_state"].items():
        torch.testing.assert_close(resumed["model_state"][k], v, rtol=1e-9, atol=1e-11, msg=k)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_checkpoint_round_trip_through_the_device(configs, tmp_path, dtype):
    """A model trained on the device, saved, loaded on the CPU and in the ASE calculator on the device."""
    train_g, valid_g = [c.to_graph(R_MAX) for c in configs[:4]], [c.to_graph(R_MAX) for c in configs[10:]]
    model = small_model()
    train(model, train_g, valid_g, TrainConfig(**{**FAST, "max_epochs": 1}, device=DEVICE, dtype=dtype),
          run_dir=tmp_path, log=lambda *a: None)
    loaded = load_model(tmp_path / "best.pt")
    box = configs[-1].to_atoms()
    box.calc = MiniMACECalculator(loaded, device=DEVICE, dtype=dtype)
    e_dev, f_dev, s_dev = box.get_potential_energy(), box.get_forces(), box.get_stress()
    box.calc = MiniMACECalculator(str(tmp_path / "best.pt"), device="cpu", dtype="float64")
    e_cpu, f_cpu, s_cpu = box.get_potential_energy(), box.get_forces(), box.get_stress()
    tol = TOL[getattr(torch, dtype)]["atol"]
    assert abs(e_dev - e_cpu) <= tol * abs(e_cpu)
    assert abs(f_dev - f_cpu).max() <= tol * max(abs(f_cpu).max(), 1.0)
    assert abs(s_dev - s_cpu).max() <= tol * max(abs(s_cpu).max(), 1e-2)
