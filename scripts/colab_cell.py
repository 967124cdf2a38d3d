"""Insert (or refresh) the Colab set-up cell at the very top of every lesson notebook.

The cell does nothing outside Colab. In Colab (``"google.colab" in sys.modules``) it installs minimace from the
repository (``[project.urls] Repository`` in pyproject.toml, the one place the URL is written) and fetches the
real datasets the lesson reads (every ``load_shared("NAME", ...)`` of its source) with ``minimace download NAME``;
a lesson that imports the official implementation (``import mace``) also gets ``mace-torch`` at the version that
minimace is compared with.

It edits the jupytext sources ``notebooks/NN_*.py`` (py:percent) and regenerates each paired ``.ipynb`` with its
other cells, ids and metadata kept as they are. Running it twice changes nothing.

Usage: ``python scripts/colab_cell.py [--check]`` (``--check``: exit 1 if a notebook would change).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import jupytext
from jupytext.combine import combine_inputs_with_outputs

ROOT = Path(__file__).resolve().parents[1]
LESSONS = "notebooks/[0-9][0-9]_*.py"
SENTINEL = "# Colab only"  # first line of the cell: how the script finds it again
CELL_ID = "colab-setup"
DATASET_CALL = re.compile(r"""load_shared\(\s*["']([A-Za-z0-9_]+)["']""")
IMPORTS_MACE = re.compile(r"^\s*(import mace\b|from mace\b)", re.M)
MACE_TORCH = "mace-torch==0.3.16"  # as the Makefile's .venv-mace


def repository_url(root: Path = ROOT) -> str:
    """The repository URL of ``[project.urls] Repository`` in pyproject.toml."""
    with open(root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"]


def datasets_of(source: str) -> list[str]:
    """Names of the shared datasets a lesson reads, in order of first use."""
    return list(dict.fromkeys(DATASET_CALL.findall(source)))


def packages_of(source: str, url: str) -> list[str]:
    """What pip installs in Colab for a lesson: minimace from the repository, and mace-torch if it is used."""
    return [f"git+{url}"] + ([MACE_TORCH] if IMPORTS_MACE.search(source) else [])


def cell_text(packages: list[str], datasets: list[str]) -> str:
    """The py:percent text of the set-up cell (hidden on the website by its ``remove-cell`` tag)."""
    install = ", ".join(f'"{p}"' for p in packages)
    lines = [
        '# %% tags=["remove-cell"]',
        f"{SENTINEL} (does nothing elsewhere): install minimace and fetch the data of this lesson.",
        "import sys",
        'if "google.colab" in sys.modules:',
        "    import subprocess",
        f"    packages = [{install}]",
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *packages], check=True)',
    ]
    lines += [f'    subprocess.run(["minimace", "download", "{name}"], check=True)' for name in datasets]
    return "\n".join(lines) + "\n"


def with_cell(source: str, cell: str) -> str:
    """``source`` (py:percent text) with ``cell`` as its first cell, replacing an older set-up cell."""
    header = re.match(r"(# ---\n.*?\n# ---\n)\n*", source, flags=re.S)
    if header is None:
        raise ValueError("no jupytext header (# --- ... # ---) at the top")
    body = source[header.end():]
    first = re.match(r"# %%[^\n]*\n(.*?)(?=^# %%|\Z)", body, flags=re.S | re.M)
    if first is not None and first.group(1).startswith(SENTINEL):
        body = body[first.end():]
    return header.group(1) + "\n" + cell + "\n" + body.lstrip("\n")


def refresh(py: Path, url: str, check: bool = False) -> bool:
    """Write the set-up cell into ``py`` and its ``.ipynb``; return True if either changed (or would)."""
    old = py.read_text()
    new = with_cell(old, cell_text(packages_of(old, url), datasets_of(old)))
    ipynb = py.with_suffix(".ipynb")
    notebook = jupytext.reads(new, fmt="py:percent")
    cell_id = CELL_ID  # a new set-up cell gets this id; an existing one keeps its own (jupytext may renew ids)
    if ipynb.exists():
        previous = jupytext.read(ipynb)
        notebook = combine_inputs_with_outputs(notebook, previous, fmt="py:percent")
        if previous.cells and previous.cells[0].source.startswith(SENTINEL) and previous.cells[0].get("id"):
            cell_id = previous.cells[0]["id"]
    notebook.cells[0]["id"] = cell_id
    text = jupytext.writes(notebook, fmt="ipynb").rstrip("\n") + "\n"
    changed = new != old or not ipynb.exists() or ipynb.read_text() != text
    if changed and not check:
        py.write_text(new)
        ipynb.write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a notebook would change")
    args = parser.parse_args(argv)
    url = repository_url()
    changed = [py for py in sorted(ROOT.glob(LESSONS)) if refresh(py, url, check=args.check)]
    for py in changed:
        print(("stale: " if args.check else "updated: ") + str(py.relative_to(ROOT)))
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
