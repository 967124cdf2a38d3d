"""benchmarks/gpu_check.py: its speed part runs on the CPU (the dry-run's code path), and a part that crashes or
runs too long becomes a failed row with its reason instead of stopping the table."""

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402


def _args(**kw):
    return argparse.Namespace(**{"device": "cpu", "dry_run": True, **kw})


def test_speed_part_runs_on_the_cpu():
    rows = gpu_check.part_speed(_args())
    assert len([r for r in rows if r["check"].startswith("E+F")]) >= 4
    for r in rows:
        assert r["status"] in ("ok", "skip"), r
    assert {"float32", "float64"} <= {r["check"].split(", ")[-1].split()[0] for r in rows if r["status"] == "ok"}
    assert all("ms" in r["result"] for r in rows if r["status"] == "ok")


def test_a_broken_or_slow_part_is_a_failed_row(monkeypatch):
    crashed = gpu_check.run_part("speed", _args(), python="false")  # exits 1 without output
    assert [r["status"] for r in crashed] == ["fail"] and "exit status 1" in crashed[0]["detail"]
    monkeypatch.setattr(gpu_check, "LIMITS", {"speed": 0.01})
    slow = gpu_check.run_part("speed", _args(dry_run=False), python=sys.executable)
    assert [r["status"] for r in slow] == ["fail"] and "did not finish within" in slow[0]["detail"]


def test_table_has_one_line_per_row():
    rows = [gpu_check.row("a", "x | y", "ok", "1 ms"), gpu_check.row("b", "z", "skip", "", "no GPU\nhere")]
    lines = gpu_check.table(rows).splitlines()
    assert len(lines) == 4 and all(line.count("|") == 6 for line in lines[2:])


@pytest.mark.parametrize("status, code", [("ok", 0), ("fail", 1)])
def test_exit_status_says_whether_a_row_failed(monkeypatch, status, code):
    monkeypatch.setattr(gpu_check, "run_part", lambda name, args, python: [gpu_check.row(name, name, status)])
    monkeypatch.setattr(gpu_check, "machine", lambda device: "test machine")
    assert gpu_check.main(["--device", "cpu", "--dry-run", "--parts", "tests,ddp"]) == code
