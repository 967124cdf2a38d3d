"""HDF5 shards: the graphs read back equal those built from the extxyz file; training from shards equals
training from the file (same seed, bit for bit); under torchrun with a distributed sampler; clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

from minimace.checkpoint import load_checkpoint
from minimace.cli import ConfigError, main, resolve_options, run_preprocess, run_train, train_config
from minimace.data import DataError, read_configurations
from minimace.datasets import bundled_dir
from minimace.shards import ShardDataset, load_prepared, read_meta, write_prepared, write_split
from minimace.train import epoch_batches

pytest.importorskip("h5py")

R_MAX = 4.0
TINY = {"hidden_irreps": "8x0e+8x1o", "max_ell": "1", "correlation": "2", "radial_MLP": "[16]", "MLP_irreps": "8x0e",
        "forces_weight": "100", "stress_weight": "10", "progress": "false", "device": "cpu", "max_epochs": "2",
        "batch_size": "4"}


def _quiet(*args):
    pass


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory):
    """Molecules and periodic water boxes (with stress); one frame without forces, one with a loss weight."""
    molecules = ase.io.read(bundled_dir() / "train.xyz", ":10")
    boxes = ase.io.read(bundled_dir() / "water_box.xyz", ":4")
    frames = molecules[:5] + boxes[:2] + molecules[5:] + boxes[2:]
    energy = frames[3].get_potential_energy()
    frames[3].calc = None  # keep the energy, drop the forces
    frames[3].info["energy"] = energy
    frames[4].info["config_energy_weight"] = 0.5
    path = tmp_path_factory.mktemp("mixed") / "mixed.xyz"
    ase.io.write(path, frames, format="extxyz")
    return path


def assert_same_graph(got: dict, expected: dict):
    """Same keys, dtypes, shapes and values (exactly)."""
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_shards_read_back_the_graphs_of_the_file(mixed_file, tmp_path, dtype):
    configs = read_configurations(mixed_file, required=())
    write_split(configs, tmp_path, "train", R_MAX, shard_size=3)  # 14 structures in 5 shards
    write_split(configs[:1], tmp_path, "valid", R_MAX)
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 1, "r_max": R_MAX, "splits": {
        "train": {"files": [f"train_{k:05d}.h5" for k in range(5)]}, "valid": {"files": ["valid_00000.h5"]}}}))
    data = ShardDataset(tmp_path, "train", dtype)
    assert len(data) == len(configs) == 14
    assert "forces" not in data[3] and data[4]["energy_weight"].item() == 0.5 and "stress" in data[5]
    for k, c in enumerate(configs):
        expected = c.to_graph(R_MAX, dtype)
        assert_same_graph(data[k], expected)
        assert data.n_edges[k] == expected["edge_index"].shape[1] and data.n_atoms[k] == len(c)
        assert data.sources[k] == c.source
    assert_same_graph(data[-1], configs[-1].to_graph(R_MAX, dtype))
    # negative control: the checker sees a different structure, and a one-ulp change of one position
    with pytest.raises(AssertionError):
        assert_same_graph(data[1], configs[0].to_graph(R_MAX, dtype))
    g = configs[0].to_graph(R_MAX, dtype)
    g["positions"][2, 1] = torch.nextafter(g["positions"][2, 1], torch.tensor(np.inf, dtype=dtype))
    with pytest.raises(AssertionError):
        assert_same_graph(data[0], g)
    with pytest.raises(IndexError):
        data[14]


def test_statistics_in_meta_are_those_of_the_training_run(mixed_file, tmp_path):
    from minimace.cli import prepare_data

    v = resolve_options({"train_file": str(mixed_file), "valid_fraction": "0.25", "E0s": "least-squares",
                         "r_max": str(R_MAX), "seed": "5"}, None)
    run_preprocess(v, tmp_path / "shards", shard_size=4, log=_quiet)
    from_file = prepare_data(v, _quiet)
    from_shards = prepare_data(resolve_options({"train_shards": str(tmp_path / "shards"), "seed": "5"}, None), _quiet)
    for key in ("e0s", "avg_num_neighbors", "shift", "scale"):
        assert from_shards[key] == from_file[key], key
    assert len(from_shards["train"]) == len(from_file["train"]) == 11 and len(from_shards["valid"]) == 3
    for k in range(len(from_file["train"])):  # same split, same order
        assert_same_graph(from_shards["train"][k], from_file["train"][k])
        assert from_shards["train_names"][k] == from_file["train_names"][k]


@pytest.mark.parametrize("edges", [None, "400"])
def test_training_from_shards_equals_training_from_the_file(mixed_file, tmp_path, edges):
    data = {"valid_fraction": "0.25", "E0s": "average", "r_max": str(R_MAX)}
    flags = {**TINY, "seed": "7", **({"max_edges_per_batch": edges} if edges else {})}
    run_train(resolve_options({**flags, **data, "train_file": str(mixed_file), "run_dir": str(tmp_path / "a")},
                              None), log=_quiet)
    assert main(["preprocess", f"--train-file={mixed_file}", "--valid-fraction=0.25", "--E0s=average",
                 f"--r-max={R_MAX}", "--seed=7", "--shard-size=5", f"--out={tmp_path / 'shards'}"]) == 0
    run_train(resolve_options({**flags, "train_shards": str(tmp_path / "shards"), "run_dir": str(tmp_path / "b")},
                              None), log=_quiet)
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in "ab")
    assert [r["train_loss"] for r in a["run_state"]["history"]] == [r["train_loss"] for r in b["run_state"]["history"]]
    for k, v in a["model_state"].items():
        assert torch.equal(b["model_state"][k], v), k
    assert a["optimizer_state"]["state"][0]["exp_avg"].abs().max() > 0  # the runs trained (not a vacuous check)
    # negative control: another training seed gives other weights
    run_train(resolve_options({**flags, "seed": "8", "train_shards": str(tmp_path / "shards"),
                               "run_dir": str(tmp_path / "c")}, None), log=_quiet)
    c = load_checkpoint(tmp_path / "c" / "checkpoint.pt")
    assert not all(torch.equal(c["model_state"][k], v) for k, v in a["model_state"].items())


@pytest.mark.slow
def test_torchrun_from_shards_with_edge_budget_equals_one_process(mixed_file, tmp_path):
    """``torchrun --nproc-per-node 2 ... --train-shards DIR --max-edges-per-batch N`` (gloo) = one process."""
    run_preprocess(resolve_options({"train_file": str(mixed_file), "valid_fraction": "0.25", "E0s": "average",
                                    "r_max": str(R_MAX), "seed": "7"}, None), tmp_path / "shards", 5, log=_quiet)
    flags = {**TINY, "seed": "6", "max_edges_per_batch": "1400", "train_shards": str(tmp_path / "shards")}
    # the same global batches in 1 and 2 processes: every batch of the 1-process plan has two structures or more
    config = train_config(resolve_options(flags, None))
    n_edges = ShardDataset(tmp_path / "shards").n_edges
    assert min(len(b) for e in range(2) for b in epoch_batches(config, n_edges, e)) >= 2
    run_train(resolve_options({**flags, "run_dir": str(tmp_path / "one")}, None), log=_quiet)
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()] + [f"--run-dir={tmp_path / 'two'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "minimace.cli", "train", *argv], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "distributed: 2 process(es), backend gloo" in out.stdout
    one, two = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("one", "two"))
    assert [r["steps"] for r in one["run_state"]["history"]] == [r["steps"] for r in two["run_state"]["history"]]
    assert [r["train_loss"] for r in two["run_state"]["history"]] == pytest.approx(
        [r["train_loss"] for r in one["run_state"]["history"]], rel=1e-10)
    for k, v in one["model_state"].items():
        torch.testing.assert_close(two["model_state"][k], v, rtol=1e-9, atol=1e-11, msg=k)


def test_errors_name_the_problem(mixed_file, tmp_path):
    with pytest.raises(DataError, match="no meta.json"):
        read_meta(tmp_path)
    v = resolve_options({"train_file": str(mixed_file), "valid_fraction": "0.25", "E0s": "average",
                         "r_max": str(R_MAX)}, None)
    run_preprocess(v, tmp_path / "s", 100, log=_quiet)
    with pytest.raises(ConfigError, match=r"\['valid_fraction', 'E0s'\] were fixed by `minimace preprocess`"):
        resolve_options({"train_shards": str(tmp_path / "s"), "E0s": "average", "valid_fraction": "0.1"}, None)
    with pytest.raises(ConfigError, match="r_max=5.0 differs from the r_max=4.0"):
        resolve_options({"train_shards": str(tmp_path / "s"), "r_max": "5"}, None)
    assert resolve_options({"train_shards": str(tmp_path / "s")}, None)["r_max"] == R_MAX
    (tmp_path / "s" / "valid_00000.h5").unlink()
    with pytest.raises(DataError, match="split 'valid' lists valid_00000.h5, which is missing"):
        load_prepared(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    (tmp_path / "s" / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(DataError, match="shard format 99"):
        read_meta(tmp_path / "s")
    with pytest.raises(ValueError, match="needs a train and a valid split"):
        write_prepared(tmp_path / "t", {"train": []}, R_MAX, {})
