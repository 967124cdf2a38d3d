"""Test-suite settings shared by tests/ and notebooks/ (nbval).

- Notebooks run in quick mode (``MINIMACE_QUICK=1``) so the whole suite fits the CPU budget of CI.
- ``MINIMACE_DATA`` defaults to the first existing folder of ``minimace.datasets.data_roots()`` (``../shared/data``
  beside the checkout, then the user cache that ``minimace download`` fills), else to ``../shared/data``.
- Tests and notebooks that need the official implementation (mace-torch 0.3.16, which pins e3nn 0.4.4) live in
  ``tests/mace/`` and ``notebooks/08_*``; they are collected only in the second environment ``.venv-mace``.
  In the main environment, ``tests/test_mace_environment.py`` runs them there, so one ``pytest`` runs everything.
- nbval starts each notebook's kernel as the website's kernels are started (inline plots, this checkout's
  ``minimace`` first on ``PYTHONPATH``), and a notebook whose cells all passed is written with its outputs to
  ``build/book/nbval/``: ``book/build.py`` uses that copy instead of executing the notebook again when it was
  executed from the same notebook file and package (``book/nbval_record.py``).
"""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("MINIMACE_QUICK", "1")
if "MINIMACE_DATA" not in os.environ:
    from minimace.datasets import data_roots

    os.environ["MINIMACE_DATA"] = str(next((p for p in data_roots() if p.is_dir()), ROOT.parent / "shared" / "data"))
os.environ.setdefault("MPLBACKEND", "Agg")

if importlib.util.find_spec("mace") is None:
    collect_ignore = ["tests/mace"]
    collect_ignore_glob = ["notebooks/08_*"]


# Scheduled first: the comparisons with mace-torch are one test that runs the whole of tests/mace/ and notebook 08
# in .venv-mace, the longest test of the suite (~12 % of its time); started last, the other worker idles meanwhile.
FIRST = ("tests/test_mace_environment.py",)


def pytest_collection_modifyitems(config, items):
    """Put the files of ``FIRST`` first (order only: every test still runs; with xdist each file stays whole)."""
    def rank(item):
        path = Path(str(item.fspath)).resolve()
        return 0 if any(path == ROOT / first for first in FIRST) else 1

    items.sort(key=rank)  # stable: the order within each group is kept


# --- nbval: the notebooks' kernels and their executed copies for the website (book/nbval_record.py) ----------

def _nbval_record():
    spec = importlib.util.spec_from_file_location("minimace_book_nbval_record", ROOT / "book" / "nbval_record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_record = _nbval_record()


def _is_nbval_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell" and hasattr(item, "test_outputs")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """The setup of a notebook's first cell starts its kernel: start it in the website's kernel environment."""
    if not _is_nbval_cell(item) or item.parent.kernel is not None:
        yield
        return
    _record.kernel_starting(item.parent)
    with _record.kernel_environment(ROOT):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep the outputs of each notebook cell nbval ran; the notebook is written after its last cell passed."""
    outcome = yield
    if call.when == "call" and _is_nbval_cell(item):
        _record.cell_done(item, outcome.get_result())
