"""Executed copies of the notebooks that nbval runs, for the website (pytest hooks in conftest.py; book/build.py).

nbval executes every notebook of the test suite; the website needs every lesson and exercise solution executed
once more with its outputs. In CI each notebook is executed once: while nbval runs a notebook, the outputs it
receives from the kernel are kept, and when every code cell has passed the notebook is written with those outputs
to ``build/book/nbval/<path of the notebook>``, with what it was executed from (the SHA-256 of the notebook file,
the fingerprint of ``minimace/``, quick mode, whether mace-torch was importable). ``book/build.py`` takes such a
copy instead of executing the notebook again only when all of these match the notebook and the package of the
build; otherwise it executes the notebook itself, as before.

nbval's kernel is started with the kernel environment of the website (``kernel_environment``): matplotlib's
inline backend (no ``MPLBACKEND``, so plots are part of the outputs, as in Jupyter), the checkout's ``minimace``
first on ``PYTHONPATH`` (the code whose fingerprint is recorded) and no debugger warning on stderr.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "build" / "book" / "nbval"
KEY = "minimace_nbval"  # notebook metadata entry of a recorded copy


def package_fingerprint(root: Path = ROOT) -> str:
    """SHA-256 of the package's files: outputs computed by another version of minimace are not reused."""
    digest = hashlib.sha256()
    for path in sorted(p for p in (root / "minimace").rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def record_path(notebook: Path, root: Path = ROOT) -> Path | None:
    """Where the executed copy of ``notebook`` goes; None for a notebook outside the checkout's notebooks/."""
    try:
        rel = Path(notebook).resolve().relative_to(root / "notebooks")
    except ValueError:
        return None
    return RECORDS / "notebooks" / rel


@contextlib.contextmanager
def kernel_environment(root: Path = ROOT):
    """``os.environ`` as the website's kernels see it, while nbval starts a kernel (restored afterwards)."""
    saved = dict(os.environ)
    os.environ.pop("MPLBACKEND", None)  # CI sets Agg; the inline backend puts the plots into the outputs
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [saved.get("PYTHONPATH")] if p])
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def mace_torch_installed() -> bool:
    """True where the official implementation is installed (its distribution, not any ``mace`` on sys.path:
    pytest puts tests/ there, whose tests/mace/ would pass for a namespace package)."""
    try:
        importlib.metadata.version("mace-torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _state(nbfile) -> dict:
    """What has been recorded so far for the notebook of nbval's collector ``nbfile``."""
    return nbfile.__dict__.setdefault(KEY, {"outputs": {}, "seconds": 0.0, "failed": False})


def kernel_starting(nbfile) -> None:
    """Before nbval starts the notebook's kernel: forget an older copy, note what the notebook runs with."""
    target = record_path(Path(str(nbfile.fspath)))
    if target is not None and target.exists():
        target.unlink()
    _state(nbfile).update(source_sha256=file_sha256(Path(str(nbfile.fspath))), package=package_fingerprint(),
                          quick=os.environ.get("MINIMACE_QUICK", ""),
                          mace=mace_torch_installed())


def cell_done(item, report) -> None:
    """After nbval ran cell ``item`` (its call phase): keep its outputs; write the copy after the last cell."""
    nbfile = item.parent
    state = _state(nbfile)
    target = record_path(Path(str(nbfile.fspath)))
    if target is None or "source_sha256" not in state:
        return
    if not report.passed:
        state["failed"] = True
        return
    state["outputs"][item.cell_num] = copy.deepcopy(list(item.test_outputs or []))
    state["seconds"] += report.duration
    code = [cell for cell in nbfile.nb.cells if cell.cell_type == "code"]
    if item.cell_num != len(code) - 1 or state["failed"] or len(state["outputs"]) != len(code):
        return
    nb = copy.deepcopy(nbfile.nb)
    for number, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.outputs = [nbformat.from_dict(o) for o in state["outputs"][number]]
        cell.execution_count = number + 1
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = number + 1
    nb.metadata[KEY] = {k: state[k] for k in ("source_sha256", "package", "quick", "mace", "seconds")}
    nbformat.validate(nb)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    nbformat.write(nb, partial)
    partial.replace(target)


def load(notebook: Path, *, package: str, mace: bool) -> nbformat.NotebookNode | None:
    """The executed copy of ``notebook`` if it was executed from this file, this package, in quick mode and in
    the right environment (``mace``: with mace-torch importable); else None."""
    target = record_path(notebook)
    if target is None or not target.exists():
        return None
    try:
        nb = nbformat.read(target, as_version=4)
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    meta = nb.metadata.get(KEY, {})
    if (meta.get("source_sha256") != file_sha256(notebook) or meta.get("package") != package
            or meta.get("quick") != "1" or bool(meta.get("mace")) != mace):
        return None
    return nb
