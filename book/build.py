"""Build the tutorial website: execute the notebooks (cached), then run Sphinx.

    python book/build.py            # what `make book` runs; the site is build/book/html/index.html

1. Every lesson (``notebooks/NN_*.ipynb``) and exercise solution (``notebooks/exercises/*_solution.ipynb``) found
   at build time is executed in quick mode (``MINIMACE_QUICK=1``, one thread per kernel, two kernels at a time) with its directory
   as working directory, as nbval runs it. Executed notebooks go into a jupyter-cache (``build/book/jupyter_cache``)
   keyed by the hash of their code cells: a notebook whose code did not change is not executed again, unless the
   package (``minimace/``) changed, which empties the cache. The wall
   time of each execution is stored with it; the landing page shows it. Student notebooks are shown as handed
   out, without outputs (``NOT_EXECUTED``).
   A notebook that nbval executed in the test run is not executed again: its copy with the outputs nbval
   received (``build/book/nbval/``, written by the pytest hooks of conftest.py, book/nbval_record.py) goes into
   the cache instead, if it was executed from the same notebook file, the same ``minimace/``, in quick mode and
   (notebook 08) with mace-torch. CI runs the tests first, so there each notebook is executed once.
2. A notebook that imports ``mace`` (the official implementation) runs in the second environment ``.venv-mace``
   through a kernel spec written into the build folder. Where that environment is missing the page is rendered
   without outputs and says so (``make setup-mace`` creates it).
3. Output of ipywidgets (``interact``): a static site has no kernel, so the widget is replaced by what its output
   area shows at the initial slider values (its plot), with a note that it is interactive in Jupyter or Colab.
4. ``sphinx-build`` reads the same cache (myst-nb, ``nb_execution_mode = "cache"``) and writes the site.

Any notebook that fails to execute fails the build, with its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nbval_record  # noqa: E402  (book/nbval_record.py: the notebooks nbval executed in the test run)

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "book"
CACHE = BUILD / "jupyter_cache"
HTML = BUILD / "html"
KERNELS = BUILD / "jupyter"  # JUPYTER_PATH entry holding kernels/minimace-mace/kernel.json
STATUS = BUILD / "execution.json"  # per notebook: executed (seconds, kernel) or why not
LESSONS = "notebooks/[0-9][0-9]_*.ipynb"
EXERCISES = "notebooks/exercises/*.ipynb"
MACE_PYTHON = ROOT / ".venv-mace" / "bin" / "python"
MACE_KERNEL = "minimace-mace"
TIMEOUT = 900  # seconds per cell
# Shown without outputs, as handed out (their check cells only say "not implemented yet"); the solution notebooks
# are executed. This keeps the build within the CI budget.
NOT_EXECUTED = {"notebooks/exercises/*_student.ipynb": "the student version, as handed out: run it in Jupyter, "
                "and see the solution notebook for the outputs of its checks"}
NEEDS_MACE = re.compile(r"^\s*(import mace\b|from mace\b)", re.M)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("*Interactive in Jupyter or Colab (sliders); the website shows the output at the initial "
               "values.*")


def notebooks(root: Path = ROOT) -> list[Path]:
    """The lesson and exercise notebooks present now (globs, so new ones are picked up)."""
    return sorted(root.glob(LESSONS)) + sorted(root.glob(EXERCISES))


def needs_mace(nb: nbformat.NotebookNode) -> bool:
    """True if a code cell imports the official implementation (mace-torch)."""
    return any(cell.cell_type == "code" and NEEDS_MACE.search(cell.source) for cell in nb.cells)


def write_mace_kernel() -> None:
    """A kernel spec that starts ipykernel in ``.venv-mace``."""
    spec = KERNELS / "kernels" / MACE_KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    argv = [str(MACE_PYTHON), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "minimace (.venv-mace)",
                                                  "language": "python"}, indent=1))


def kernel_environment() -> dict[str, str]:
    """Environment of the kernels: quick mode, one thread, the worktree's minimace, inline plots.

    ``MINIMACE_DATA`` is passed on as it is: unset, the package finds the shared folder or the download cache.
    """
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # CI sets Agg; the inline backend is what puts plots into the outputs
    env.update(MINIMACE_QUICK="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["JUPYTER_PATH"] = os.pathsep.join([str(KERNELS)] + [p for p in [env.get("JUPYTER_PATH")] if p])
    return env


def _widget_outputs(model_id: str, state: dict, seen: set | None = None) -> list:
    """Outputs captured by the Output widgets inside widget ``model_id`` (depth first)."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in state:
        return []
    seen.add(model_id)
    model = state[model_id].get("state", {})
    if model.get("_model_name") == "OutputModel":
        return list(model.get("outputs", []))
    found = []
    for child in model.get("children", []):
        found += _widget_outputs(str(child).removeprefix("IPY_MODEL_"), state, seen)
    return found


def freeze_widgets(nb: nbformat.NotebookNode) -> int:
    """Replace each widget view by the outputs its Output widgets hold; return how many were replaced."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(output)
                continue
            replaced += 1
            outputs += [nbformat.from_dict(o) for o in _widget_outputs(view["model_id"], state)]
            outputs.append(nbformat.v4.new_output("display_data", data={"text/markdown": WIDGET_NOTE}))
        if "outputs" in cell:
            cell.outputs = outputs
    nb.metadata.pop("widgets", None)  # no widget JavaScript on the site (it would come from a CDN)
    return replaced


def execute_one(path: str, kernel: str) -> tuple[str, dict, float, str | None]:
    """Execute one notebook (in a worker process); return it, its wall time and the error text if any."""
    from jupyter_cache.executors.utils import single_nb_execution

    nb = nbformat.read(path, as_version=4)
    env = kernel_environment()
    os.environ.clear()  # the kernel's environment exactly: update() alone would keep CI's MPLBACKEND=Agg (no plots)
    os.environ.update(env)
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=TIMEOUT, allow_errors=False,
                                 kernel_name=kernel)
    return path, result.nb, result.time, result.exc_string


def store(cache, executed: nbformat.NotebookNode, source: nbformat.NotebookNode, path: str, seconds: float) -> int:
    """Put an executed notebook into the cache (widgets frozen); return how many widgets were frozen."""
    from jupyter_cache.base import CacheBundleIn

    executed.metadata["kernelspec"] = source.metadata.get("kernelspec", {})  # the hash uses it
    frozen = freeze_widgets(executed)
    cache.cache_notebook_bundle(CacheBundleIn(executed, path, data={"execution_seconds": seconds}),
                                check_validity=False, overwrite=True)
    return frozen


def execute_all(paths: list[Path], workers: int = 2) -> dict:
    """Execute the notebooks that the cache lacks; return the execution status of every notebook.

    The cache is emptied when the package changed since it was filled (its key is the code of the notebook only).
    """
    from jupyter_cache import get_cache

    status = json.loads(STATUS.read_text()) if STATUS.exists() else {}
    fingerprint = nbval_record.package_fingerprint()
    if status.get("_package") != fingerprint:
        shutil.rmtree(CACHE, ignore_errors=True)
        status = {"_package": fingerprint}
    cache = get_cache(str(CACHE))
    todo, reused = [], []
    for path in paths:
        rel = str(path.relative_to(ROOT))
        why = next((why for pattern, why in NOT_EXECUTED.items() if path.match(pattern)), None)
        if why is not None:
            status[rel] = {"executed": False, "why": why}
            continue
        nb = nbformat.read(path, as_version=4)
        kernel = "python3"
        if needs_mace(nb):
            if not MACE_PYTHON.exists():
                status[rel] = {"executed": False, "why": "needs mace-torch in .venv-mace (make setup-mace)"}
                continue
            kernel = MACE_KERNEL
        try:
            record = cache.match_cache_notebook(nb)
            status[rel] = {"executed": True, "seconds": record.data.get("execution_seconds"), "kernel": kernel,
                           "cached": True}
            continue
        except KeyError:
            pass
        executed = nbval_record.load(path, package=fingerprint, mace=kernel == MACE_KERNEL)
        if executed is None:
            todo.append((path, kernel, nb))
            continue
        seconds = executed.metadata.pop(nbval_record.KEY)["seconds"]
        store(cache, executed, nb, str(path), seconds)
        status[rel] = {"executed": True, "seconds": seconds, "kernel": kernel, "cached": False, "by": "nbval"}
        reused.append(rel)
    if reused:
        print(f"{len(reused)} notebook(s) executed by nbval in the test run, outputs taken from "
              f"{nbval_record.RECORDS.relative_to(ROOT)}: {', '.join(Path(r).stem for r in reused)}", flush=True)
    if any(kernel == MACE_KERNEL for _, kernel, _ in todo):
        write_mace_kernel()
    errors = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(execute_one, str(path), kernel) for path, kernel, _ in todo]
        sources = {str(path): (kernel, nb) for path, kernel, nb in todo}
        for job in jobs:
            path, executed, seconds, error = job.result()
            rel = str(Path(path).relative_to(ROOT))
            kernel, source = sources[path]
            if error is not None:
                errors.append(f"--- {rel} failed to execute:\n{error}")
                status.pop(rel, None)
                continue
            frozen = store(cache, executed, source, path, seconds)
            status[rel] = {"executed": True, "seconds": seconds, "kernel": kernel, "cached": False}
            print(f"executed {rel} in {seconds:.1f} s ({kernel}{f', {frozen} widget(s) frozen' if frozen else ''})",
                  flush=True)
    STATUS.parent.mkdir(parents=True, exist_ok=True)
    STATUS.write_text(json.dumps(status, indent=1, sort_keys=True))
    if errors:
        sys.exit("\n".join(errors))
    return status


def sphinx(builder: str = "html", jobs: int = 1) -> int:
    """Run sphinx-build on the repository with the configuration in book/."""
    from sphinx.cmd.build import build_main

    os.environ.update({k: v for k, v in kernel_environment().items() if k in ("MINIMACE_QUICK", "JUPYTER_PATH")})
    args = ["-b", builder, "-a", "-c", str(ROOT / "book"), "-j", str(jobs), "-q", "--keep-going",
            str(ROOT), str(HTML)]
    return build_main(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the tutorial website (build/book/html).")
    parser.add_argument("--workers", type=int, default=2, help="notebooks executed at the same time")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    execute_all(notebooks(), workers=args.workers)
    executed = time.perf_counter()
    rc = sphinx()
    print(f"book: notebooks {executed - start:.0f} s, sphinx {time.perf_counter() - executed:.0f} s; "
          f"open {HTML / 'index.html'}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
