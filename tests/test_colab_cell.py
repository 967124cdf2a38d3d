"""The Colab set-up cell (scripts/colab_cell.py): first in every lesson, inert outside Colab, right inside it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("colab_cell", ROOT / "scripts" / "colab_cell.py")
colab_cell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab_cell)
LESSONS = sorted(ROOT.glob(colab_cell.LESSONS))


def expected_source(py: Path) -> str:
    """The code of the set-up cell for the lesson ``py`` (without its ``# %%`` line)."""
    source = py.read_text()
    text = colab_cell.cell_text(colab_cell.packages_of(source, colab_cell.repository_url()),
                                colab_cell.datasets_of(source))
    return text.split("\n", 1)[1].rstrip("\n")


def first_cell_problem(nb: nbformat.NotebookNode, source: str) -> str | None:
    """What is wrong with the first cell of ``nb``, or None."""
    if not nb.cells:
        return "no cells"
    cell = nb.cells[0]
    if cell.cell_type != "code" or cell.source != source:
        return f"first cell is not the Colab set-up cell (run python scripts/colab_cell.py): {cell.source[:80]!r}"
    if "remove-cell" not in cell.metadata.get("tags", []):
        return "the set-up cell lacks its remove-cell tag"
    return None


@pytest.mark.parametrize("py", LESSONS, ids=[p.stem for p in LESSONS])
def test_every_lesson_starts_with_the_colab_cell(py):
    source = expected_source(py)
    for notebook in (nbformat.read(py.with_suffix(".ipynb"), as_version=4), jupytext.read(py)):
        assert first_cell_problem(notebook, source) is None, py.name


def test_check_catches_a_lesson_without_the_cell():
    """Negative control: the lesson without its first cell, or with a stale URL, fails the check."""
    py = next(p for p in LESSONS if p.name.startswith("02"))
    nb = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
    source = expected_source(py)
    assert first_cell_problem(nb, source) is None
    stale = nbformat.from_dict(nb)
    stale.cells[0].source = stale.cells[0].source.replace(colab_cell.repository_url(), "https://example.invalid/x")
    assert "not the Colab set-up cell" in first_cell_problem(stale, source)
    stale.cells.pop(0)
    assert "not the Colab set-up cell" in first_cell_problem(stale, source)


def test_refresh_is_idempotent(tmp_path):
    """Inserting twice gives one cell; a new dataset call in the lesson is picked up."""
    py = next(p for p in LESSONS if p.name.startswith("02"))
    text = py.read_text()
    once = colab_cell.with_cell(text, colab_cell.cell_text(["git+https://x.invalid/r"], ["a"]))
    twice = colab_cell.with_cell(once, colab_cell.cell_text(["git+https://x.invalid/r"], ["a", "b"]))
    assert twice.count(colab_cell.SENTINEL) == 1
    assert '"download", "b"' in twice and "https://x.invalid/r" in twice
    def rest(source):  # everything after the set-up cell
        return source.split(colab_cell.SENTINEL, 1)[1].split("\n# %%", 1)[1]

    assert rest(twice) == rest(text)  # every other cell unchanged
    assert colab_cell.datasets_of('load_shared("botnet_ethanol", "train")\nload_shared(\'rmd17\')') == [
        "botnet_ethanol", "rmd17"]


def _run_cell(source: str, in_colab: bool, monkeypatch) -> list[list[str]]:
    """Execute the cell's code; return the commands it would have run (subprocess.run recorded, not run)."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "<colab cell>", "exec"), {})
    return calls


def test_cell_does_nothing_outside_colab(monkeypatch):
    for py in LESSONS:
        assert _run_cell(expected_source(py), False, monkeypatch) == [], py.name


def test_cell_installs_and_downloads_in_colab(monkeypatch):
    py = next(p for p in LESSONS if p.name.startswith("02"))
    calls = _run_cell(expected_source(py), True, monkeypatch)
    assert calls[0] == [sys.executable, "-m", "pip", "install", "-q", f"git+{colab_cell.repository_url()}"]
    assert calls[1:] == [["minimace", "download", name] for name in colab_cell.datasets_of(py.read_text())]
    assert calls[1:], "lesson 02 reads a shared dataset: the cell must download it"


def test_mace_lesson_installs_mace_torch_in_colab(monkeypatch):
    """The lesson that imports mace gets mace-torch too; the others do not."""
    for py in LESSONS:
        install = _run_cell(expected_source(py), True, monkeypatch)[0]
        uses_mace = colab_cell.IMPORTS_MACE.search(py.read_text()) is not None
        assert (colab_cell.MACE_TORCH in install) == uses_mace, py.name
    assert any(colab_cell.IMPORTS_MACE.search(py.read_text()) for py in LESSONS), "no lesson imports mace"
