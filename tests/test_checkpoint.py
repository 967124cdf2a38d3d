"""Checkpoint files: plain data only, atomic writes, clear errors for damaged or foreign files."""

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from minimace.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

ROOT = Path(__file__).resolve().parents[1]


def _state():
    p = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=0.1, amsgrad=True)
    p.sum().backward()
    opt.step()
    return {"kind": "training", "model_state": {"w": p.detach()}, "optimizer_state": opt.state_dict(),
            "epoch": 3, "history": [{"epoch": 0, "loss": 1.5}], "rng": rng_state(), "best": float("inf")}


def test_roundtrip_with_weights_only(tmp_path):
    state = _state()
    path = save_checkpoint(state, tmp_path / "sub" / "ck.pt")
    raw = torch.load(path, weights_only=True)  # never unpickles objects
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model_state"]["w"], state["model_state"]["w"])
    assert loaded["epoch"] == 3 and loaded["history"] == state["history"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_refuses_to_write_objects(tmp_path):
    with pytest.raises(TypeError, match="plain Python types"):
        save_checkpoint({"model": torch.nn.Linear(2, 2)}, tmp_path / "ck.pt")
    assert not (tmp_path / "ck.pt").exists()


def test_rng_state_roundtrip(tmp_path):
    save_checkpoint({"rng": rng_state()}, tmp_path / "ck.pt")
    first = (random.random(), np.random.rand(), torch.rand(2))
    set_rng_state(load_checkpoint(tmp_path / "ck.pt")["rng"])
    again = (random.random(), np.random.rand(), torch.rand(2))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])
    # negative control: without restoring, the generators move on
    assert random.random() != first[0]


def test_truncated_file(tmp_path):
    path = save_checkpoint(_state(), tmp_path / "ck.pt")
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupted"):
            load_checkpoint(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_foreign_files(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")  # a torch file, but not ours
    with pytest.raises(CheckpointError, match="not a minimace checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")  # holds an object
    with pytest.raises(CheckpointError, match="Python objects"):
        load_checkpoint(tmp_path / "pickled.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a minimace checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    with open(tmp_path / "pickle.pkl", "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(CheckpointError, match="not a minimace checkpoint"):
        load_checkpoint(tmp_path / "pickle.pkl")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_other_format_version(tmp_path):
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION + 1, "minimace_version": "9.9"}, tmp_path / "v.pt")
    with pytest.raises(CheckpointError, match=r"format version 2 \(written by minimace 9.9\)"):
        load_checkpoint(tmp_path / "v.pt")


_KILLED_WRITER = textwrap.dedent("""
    import os, sys, time, torch
    import minimace.checkpoint as ck
    ck.save_checkpoint({"epoch": 1, "w": torch.ones(1000)}, sys.argv[1])
    real_fsync = os.fsync
    def stall(fd):  # the second write stops after its bytes are on disk, before the rename
        print("WRITING", flush=True)
        time.sleep(60)
    os.fsync = stall
    ck.save_checkpoint({"epoch": 2, "w": torch.zeros(1000)}, sys.argv[1])
""")


def test_kill_during_write_keeps_previous(tmp_path):
    path = tmp_path / "ck.pt"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "the killed write left its tmp file"
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(1000))
