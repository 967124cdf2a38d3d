"""The command line: option resolution and errors, train / restart / evaluate end to end, demo."""

import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_train as t  # noqa: E402

from minimace.calculator import MiniMACECalculator  # noqa: E402
from minimace.checkpoint import load_checkpoint  # noqa: E402
from minimace.cli import ConfigError, main, resolve_options  # noqa: E402

TINY_FLAGS = ["--hidden-irreps", "8x0e+8x1o", "--max-ell", "2", "--correlation", "2", "--r-max", "4",
              "--radial-MLP", "[16]", "--MLP-irreps", "8x0e", "--num-bessel", "6", "--batch-size", "4",
              "--forces-weight", "100", "--progress", "false"]


def test_defaults_are_the_paper_recipe():
    v = resolve_options({"train_file": "x.xyz"}, None)
    model = (v["r_max"], v["num_bessel"], v["num_polynomial_cutoff"], v["max_ell"], v["correlation"])
    assert model == (5.0, 8, 5, 3, 3)
    assert (v["energy_weight"], v["forces_weight"], v["lr"], v["ema_decay"], v["batch_size"]) == (1.0, 1000.0, 0.01,
                                                                                                  0.99, 5)
    assert v["optimizer"] == "amsgrad" and v["scheduler"] == "plateau" and v["device"] == "auto"


def test_yaml_then_flags(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"train_file": "a.xyz", "max-epochs": 7, "lr": 0.005, "radial_MLP": [8, 8],
                                   "hidden_irreps": "16x0e+16x1o", "test_file": ["t1.xyz", "t2.xyz"]}))
    v = resolve_options({"lr": "0.002"}, str(cfg))
    assert v["max_epochs"] == 7 and v["lr"] == 0.002 and v["radial_MLP"] == [8, 8]
    assert v["test_file"] == ["t1.xyz", "t2.xyz"]


@pytest.mark.parametrize("options, message", [
    ({"hidden_irreps": "16x0e+8x1o"}, r"option hidden_irreps='16x0e\+8x1o': every irrep needs the same multiplicity"),
    ({"hidden_irreps": "8x1o"}, "option hidden_irreps.*must start with even scalars"),
    ({"hidden_irreps": "8x0e+8x2e", "max_ell": "1"}, "option hidden_irreps.*max_ell=1"),
    ({"MLP_irreps": "8x1o"}, "option MLP_irreps"),
    ({"valid_file": "v.xyz", "valid_fraction": "0.1"}, "options valid_file and valid_fraction contradict"),
    ({"E0s": "{bad"}, "option E0s="),
    ({"E0s": "average", "E0s_file": "iso.xyz"}, "options E0s_file and E0s='average' contradict"),
    ({"max_epochs": "ten"}, "option max_epochs: cannot read 'ten'"),
    ({"scheduler": "cosine"}, "option scheduler='cosine' is not one of"),
    ({"batch_size": "0"}, "option batch_size must be >= 1"),
    ({"r_max": "-1"}, "option r_max must be > 0"),
])
def test_config_errors_name_the_option(options, message):
    with pytest.raises(ConfigError, match=message):
        resolve_options({"train_file": "x.xyz", **options}, None)


def test_unknown_yaml_key_and_missing_train_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train_file: a.xyz\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown option 'learning_rate'"):
        resolve_options({}, str(cfg))
    with pytest.raises(ConfigError, match="option train_file is required"):
        resolve_options({}, None)


def test_main_reports_errors_with_exit_status(tmp_path, capsys):
    assert main(["train", "--train-file", str(t.ethanol_file()), "--hidden-irreps", "8x0e+4x1o"]) == 2
    assert "every irrep needs the same multiplicity" in capsys.readouterr().err
    assert main(["train", "--train-file", str(tmp_path / "missing.xyz"), "--run-dir", str(tmp_path / "r")]) == 2
    assert "missing.xyz: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: unknown flag
        main(["train", "--hidden-iireps", "8x0e"])


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    ase.io.write(folder / "train.xyz", ase.io.read(t.ethanol_file("train"), ":20"), format="extxyz")
    ase.io.write(folder / "test.xyz", ase.io.read(t.ethanol_file("test"), ":6"), format="extxyz")
    return folder


def test_train_restart_evaluate(small_files, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"train_file": str(small_files / "train.xyz"), "valid_fraction": 0.2,
                                   "test_file": [str(small_files / "test.xyz")], "E0s": "isolated",
                                   "E0s_file": str(t.bundled_dir() / "isolated_atoms.xyz"), "max_epochs": 2,
                                   "run_dir": str(run)}))
    assert main(["train", "--config", str(cfg), *TINY_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "16 training, 4 validation configurations, 6 in test" in out
    assert "test " in out.split("stopped:")[1]  # the error table has the test split
    for name in ("config.yaml", "checkpoint.pt", "best.pt", "log.csv", "errors.txt", "parity.png"):
        assert (run / name).is_file(), name
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["hidden_irreps"] == "8x0e+8x1o" and saved["max_epochs"] == 2
    # restart to 3 epochs: continues from epoch 2
    assert main(["train", "--config", str(cfg), *TINY_FLAGS, "--max-epochs", "3", "--restart",
                 str(run / "checkpoint.pt")]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["run_state"]["epoch"] == 3
    assert "restarting from" in capsys.readouterr().out
    # evaluate: table printed, predictions written, equal to the ASE calculator's
    pred = tmp_path / "pred.xyz"
    assert main(["evaluate", str(run / "best.pt"), str(small_files / "test.xyz"), "--output", str(pred)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["split", "configs"] and "F MAE" in out
    frames = ase.io.read(pred, ":")
    assert len(frames) == 6
    atoms = frames[0].copy()
    atoms.calc = MiniMACECalculator(run / "best.pt")
    np.testing.assert_allclose(frames[0].info["minimace_energy"], atoms.get_potential_energy(), rtol=1e-12)
    # extxyz stores per-atom arrays with 8 decimals (ASE's '%16.8f'): the written forces are rounded to 5e-9 eV/Å
    np.testing.assert_allclose(frames[0].arrays["minimace_forces"], atoms.get_forces(), rtol=0, atol=5.1e-9)
    assert np.abs(atoms.get_forces()).max() > 1e-3  # not vacuous: the forces are far above the rounding


def test_E0s_isolated_without_isolated_atoms(small_files, tmp_path, capsys):
    status = main(["train", "--train-file", str(small_files / "train.xyz"), "--E0s", "isolated", *TINY_FLAGS,
                   "--run-dir", str(tmp_path)])
    assert status == 2 and "option E0s='isolated': no E0 for atomic numbers [1, 6, 8]" in capsys.readouterr().err


def test_demo_runs_and_checks(tmp_path, capsys):
    """``minimace demo`` with a few seconds of training: the symmetry and force checks pass, files are written."""
    status = main(["demo", "--run-dir", str(tmp_path), "--time-budget", "0.05"])
    out = capsys.readouterr().out
    for check in ("rotation", "inversion", "forces = -dE/dx"):
        assert f"[PASS] {check}" in out, out[-2000:]
    assert "[PASS] learned" in out or "[FAIL] learned" in out
    assert status == (0 if "[FAIL]" not in out else 1)
    for name in ("best.pt", "errors.txt", "parity.png", "learning_curves.png"):
        assert (tmp_path / name).is_file(), name
