"""Render every exercise source (minimace/exercises/exNN_*.py) into two notebooks without outputs.

    notebooks/exercises/NN_name_student.ipynb   the function body replaced by ``raise NotImplementedError(hint)``
    notebooks/exercises/NN_name_solution.ipynb  the function with its solution, checked by an ``assert``

Usage: ``python scripts/render_exercises.py [--out DIR] [--check]``. ``--check`` renders into memory and exits
with status 1 if a committed notebook differs (stale); tests/test_exercises.py runs the same comparison.
The output is deterministic (fixed cell ids, no outputs), so re-rendering an unchanged source gives the
same bytes.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import textwrap
from pathlib import Path

import nbformat

from minimace.exercises import EXERCISES, load

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "notebooks" / "exercises"
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
_SENTINEL = re.compile(r"^(\s*)(# BEGIN SOLUTION|# END SOLUTION)\s*$")
KINDS = ("student", "solution")


def function_source(source: str, name: str) -> str:
    """The source text of the top-level function ``name`` in ``source``."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            lines = source.splitlines()
            end = node.end_lineno  # the last statement; trailing comments (# END SOLUTION) are not in the AST
            while end < len(lines) and (not lines[end].strip() or lines[end][:1].isspace()):
                end += 1
            return "\n".join(lines[node.lineno - 1 : end]).rstrip()
    raise ValueError(f"no top-level function {name!r}")


def _raise_lines(indent: str, hint: str) -> list[str]:
    """``raise NotImplementedError("...")`` with the hint wrapped into string pieces of at most ~80 characters."""
    pieces = textwrap.wrap(hint, 80, drop_whitespace=False)
    return [f"{indent}raise NotImplementedError("] + [f"{indent}    {p!r}" for p in pieces] + [f"{indent})"]


def render_function(text: str, kind: str, hint: str) -> str:
    """Strip the sentinels (solution) or replace each marked block by ``raise NotImplementedError`` (student)."""
    out, inside = [], False
    for line in text.splitlines():
        match = _SENTINEL.match(line)
        if match and match.group(2) == BEGIN:
            if inside:
                raise ValueError("nested # BEGIN SOLUTION")
            inside = True
            if kind == "student":
                out.extend(_raise_lines(match.group(1), hint))
        elif match:
            if not inside:
                raise ValueError("# END SOLUTION without # BEGIN SOLUTION")
            inside = False
        elif not inside or kind == "solution":
            out.append(line)
    if inside:
        raise ValueError("# BEGIN SOLUTION without # END SOLUTION")
    if len(out) == len(text.splitlines()) and kind == "solution":
        raise ValueError("the student function has no # BEGIN SOLUTION / # END SOLUTION block")
    return "\n".join(out)


def notebook(name: str, kind: str) -> nbformat.NotebookNode:
    """The ``kind`` ("student" or "solution") rendering of exercise module ``name``."""
    module = load(name)
    source = Path(module.__file__).read_text()
    fn = module.STUDENT_FUNCTION
    code = render_function(function_source(source, fn), kind, module.HINT)
    setup = "\n".join([*module.NOTEBOOK_IMPORTS, "",
                       f"from minimace.exercises import {name} as exercise", "",
                       "torch.manual_seed(0)", "torch.set_default_dtype(torch.float64)"])
    cells = [nbformat.v4.new_markdown_cell(module.__doc__.strip()), nbformat.v4.new_code_cell(setup)]
    prelude = getattr(module, "PRELUDE", None)
    if prelude:
        cells += [nbformat.v4.new_markdown_cell(prelude[0].strip()), nbformat.v4.new_code_cell(prelude[1].strip())]
    if kind == "student":
        cells.append(nbformat.v4.new_markdown_cell(
            "## Your turn\n\nReplace the `raise NotImplementedError(...)` line by your code, then run the check "
            "below. It prints PASS, or what is wrong (shape, convention, normalisation, equivariance or value)."))
        cells.append(nbformat.v4.new_code_cell(code))
        cells.append(nbformat.v4.new_code_cell(f"result = exercise.check({fn})"))
    else:
        cells.append(nbformat.v4.new_markdown_cell("## Solution"))
        cells.append(nbformat.v4.new_code_cell(code))
        cells.append(nbformat.v4.new_markdown_cell(module.NOTES.strip()))
        cells.append(nbformat.v4.new_code_cell(f"result = exercise.check({fn})\nassert result.passed"))
    for i, cell in enumerate(cells):
        cell["id"] = f"{name}-{kind}-{i:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    return nb


def output_path(name: str, kind: str, out_dir: Path = DEFAULT_OUT) -> Path:
    """``out_dir/NN_name_<kind>.ipynb`` for module ``exNN_name``."""
    return Path(out_dir) / f"{name[2:]}_{kind}.ipynb"


def index() -> str:
    """``README.md`` of the exercises folder: what each exercise is, how to use and re-render them."""
    rows = []
    for name in EXERCISES:
        module = load(name)
        title = module.__doc__.strip().splitlines()[0].lstrip("# ")
        rows.append(f"| {title} | [{output_path(name, 'student').name}]({output_path(name, 'student').name}) "
                    f"| [{output_path(name, 'solution').name}]({output_path(name, 'solution').name}) "
                    f"| `minimace/exercises/{name}.py` |")
    return "\n".join([
        "# Exercises",
        "",
        "Generated by `scripts/render_exercises.py` from `minimace/exercises/exNN_*.py`; do not edit by hand.",
        "",
        "Each student notebook holds the text of an exercise, a function to write (its body is",
        "`raise NotImplementedError(hint)`) and a check cell: `exercise.check(fn)` prints PASS, or what is wrong",
        "(shape, convention, normalisation, equivariance or value), or \"not implemented yet\".",
        "The solution notebooks hold the same function with its solution and the line ↔ equation notes.",
        "",
        "| exercise | student | solution | source |",
        "|---|---|---|---|",
        *rows,
        "",
        "After editing a source, run `python scripts/render_exercises.py` (the tests fail on stale notebooks).",
        "",
    ])


def render_all() -> dict[str, str]:
    """File name -> text, for every exercise and both renderings, and the folder's README.md."""
    files = {output_path(n, k).name: nbformat.writes(notebook(n, k)) + "\n" for n in EXERCISES for k in KINDS}
    files["README.md"] = index()
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default notebooks/exercises)")
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ from a fresh rendering")
    args = parser.parse_args(argv)
    stale = []
    for file_name, text in render_all().items():
        path = args.out / file_name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale (run scripts/render_exercises.py):\n  " + "\n  ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
