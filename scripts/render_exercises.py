"""Render every exercise into a student and a solution notebook; release them to a class; grade submissions.

Sources: the student-facing part of exercise ``exNN_name`` (text, metadata, hints, checker) is the package module
``minimace/exercises/exNN_name.py``; the teacher's part (the solution between ``# BEGIN SOLUTION`` and
``# END SOLUTION``, its notes, the wrong answers used as negative controls) is
``notebooks/exercises/source/exNN_name.py``, which is not part of the installed package.

    notebooks/exercises/NN_name_student.ipynb   the function bodies replaced by ``raise NotImplementedError``
    notebooks/exercises/NN_name_solution.ipynb  the functions with their solutions, checked by an ``assert``
    notebooks/exercises/README.md               the index: kind, difficulty, time, prerequisites

Usage::

    python scripts/render_exercises.py                  # re-render notebooks/exercises (after editing a source)
    python scripts/render_exercises.py --check          # exit 1 if a committed notebook is stale
    python scripts/render_exercises.py --release DIR    # the student notebooks + index for a class, no solutions
    python scripts/render_exercises.py --grade SUBMISSIONS --csv grades.csv [--feedback DIR]

``--grade`` runs each submitted notebook's answer cells in a fresh Python process, applies the exercise's checker
and writes one CSV row per notebook (``minimace.exercises.grade``). The output is deterministic (fixed cell ids,
no outputs), so re-rendering an unchanged source gives the same bytes.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import nbformat

from minimace.exercises import EXERCISES, LESSONS, catalogue, load

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "notebooks" / "exercises"
SOURCES = DEFAULT_OUT / "source"
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
_SENTINEL = re.compile(r"^(\s*)(# BEGIN SOLUTION|# END SOLUTION)\s*$")
KINDS = ("student", "solution")
STUB = "write this function; exercise.hint(1), hint(2), hint(3) give hints"


def teacher_source(name: str) -> ModuleType:
    """The teacher's module of exercise ``name`` (solution, ``NOTES``, ``WRONG_ANSWERS``), imported from its file."""
    path = SOURCES / f"{name}.py"
    if not path.exists():
        raise FileNotFoundError(f"no teacher source {path} for exercise {name}")
    spec = importlib.util.spec_from_file_location(f"_teacher_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    """``raise NotImplementedError("...")`` with the message wrapped into string pieces of at most ~80 characters."""
    pieces = textwrap.wrap(hint, 80, drop_whitespace=False)
    return [f"{indent}raise NotImplementedError("] + [f"{indent}    {p!r}" for p in pieces] + [f"{indent})"]


def render_function(text: str, kind: str, hint: str = STUB) -> str:
    """Strip the sentinels (solution) or replace each marked block by ``raise NotImplementedError`` (student)."""
    out, inside, blocks = [], False, 0
    for line in text.splitlines():
        match = _SENTINEL.match(line)
        if match and match.group(2) == BEGIN:
            if inside:
                raise ValueError("nested # BEGIN SOLUTION")
            inside, blocks = True, blocks + 1
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
    if not blocks:
        raise ValueError("the student function has no # BEGIN SOLUTION / # END SOLUTION block")
    return "\n".join(out)


def meta_line(module: ModuleType) -> str:
    """``**Kind** lab · **Level** intermediate · **Time** ~30 min · **Prerequisites** lessons 02, 03 (links)``."""
    meta = module.META
    lessons = ", ".join(f"[{n}](../{LESSONS[n]}.ipynb)" for n in meta["prerequisites"])
    return (f"**Kind**: {meta['kind']} · **Level**: {meta['difficulty']} · **Time**: ~{meta['minutes']} min · "
            f"**Prerequisites**: lessons {lessons}")


def notebook(name: str, kind: str) -> nbformat.NotebookNode:
    """The ``kind`` ("student" or "solution") rendering of exercise ``name``."""
    module, teacher = load(name), teacher_source(name)
    source = Path(teacher.__file__).read_text()
    fns = module.STUDENT_FUNCTIONS
    code = "\n\n\n".join(render_function(function_source(source, fn), kind) for fn in fns)
    setup = "\n".join([*module.NOTEBOOK_IMPORTS, "",
                       f"from minimace.exercises import {name} as exercise", "",
                       "torch.manual_seed(0)", "torch.set_default_dtype(torch.float64)"])
    text = module.__doc__.strip().split("\n", 1)
    cells = [nbformat.v4.new_markdown_cell(f"{text[0]}\n\n{meta_line(module)}\n{text[1] if len(text) > 1 else ''}"),
             nbformat.v4.new_code_cell(setup)]
    prelude = getattr(module, "PRELUDE", None)
    if prelude:
        cells += [nbformat.v4.new_markdown_cell(prelude[0].strip()), nbformat.v4.new_code_cell(prelude[1].strip())]
    call = f"exercise.check({', '.join(fns)})"
    if kind == "student":
        cells.append(nbformat.v4.new_markdown_cell(
            "## Your turn\n\nReplace each `raise NotImplementedError(...)` by your code (everything your answer needs "
            "goes in this cell: it is the cell that is graded), then run the check below. It prints PASS, or which "
            "property failed and where. Stuck? `exercise.hint(1)` gives the idea, `exercise.hint(2)` where to look, "
            "`exercise.hint(3)` nearly the code."))
        answer = nbformat.v4.new_code_cell(code)
        answer.metadata["minimace"] = {"answer": list(fns)}
        cells.append(answer)
        cells.append(nbformat.v4.new_code_cell(f"result = {call}"))
    else:
        cells.append(nbformat.v4.new_markdown_cell("## Solution"))
        answer = nbformat.v4.new_code_cell(code)
        answer.metadata["minimace"] = {"answer": list(fns)}
        cells.append(answer)
        cells.append(nbformat.v4.new_markdown_cell(teacher.NOTES.strip()))
        cells.append(nbformat.v4.new_code_cell(f"result = {call}\nassert result.passed"))
    for i, cell in enumerate(cells):
        cell["id"] = f"{name}-{kind}-{i:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}, "minimace": {"exercise": name, "rendering": kind}}
    return nb


def output_path(name: str, kind: str, out_dir: Path = DEFAULT_OUT) -> Path:
    """``out_dir/NN_name_<kind>.ipynb`` for module ``exNN_name``."""
    return Path(out_dir) / f"{name[2:]}_{kind}.ipynb"


def index(release: bool = False) -> str:
    """``README.md`` of the exercises folder (``release``: for students, without the solution column)."""
    rows = []
    for row in catalogue():
        prereq = ", ".join(row["prerequisites"])
        cells = [row["title"], row["kind"], row["difficulty"], f"{row['minutes']} min", prereq,
                 f"[{row['student']}]({row['student']})"]
        if not release:
            cells += [f"[{row['solution']}]({row['solution']})", f"`minimace/exercises/{row['name']}.py`",
                      f"`source/{row['name']}.py`"]
        rows.append("| " + " | ".join(cells) + " |")
    header = ["exercise", "kind", "level", "time", "lessons", "student"]
    if not release:
        header += ["solution", "checker", "teacher source"]
    text = [
        "# Exercises",
        "",
        "Generated by `scripts/render_exercises.py`; do not edit by hand.",
        "",
        "Each student notebook holds the text of an exercise, the functions to write (their bodies are",
        "`raise NotImplementedError(...)`) and a check cell: `exercise.check(...)` prints PASS, or which property",
        "failed and where (block, axis, atom, convention, side effect, method), or \"not implemented yet\".",
        "`exercise.hint(1)`, `hint(2)`, `hint(3)` reveal hints one tier at a time (the idea, where to look, nearly",
        "the code). \"lessons\" are the numbers of the notebooks in `notebooks/` to read first.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *rows,
        "",
    ]
    if not release:
        text += [
            "For teachers: the solutions, their notes and the wrong answers used to test the checkers are in",
            "`source/` (not part of the installed package). After editing a source, run",
            "`python scripts/render_exercises.py` (the tests fail on stale notebooks).",
            "`python scripts/render_exercises.py --release DIR` writes the student notebooks and this index (without",
            "solutions) for a class; `python scripts/render_exercises.py --grade SUBMISSIONS --csv grades.csv`",
            "(or `python -m minimace.exercises.grade`) grades a folder of returned notebooks into a CSV.",
            "",
        ]
    return "\n".join(text)


def render_all() -> dict[str, str]:
    """File name -> text, for every exercise and both renderings, and the folder's README.md."""
    files = {output_path(n, k).name: nbformat.writes(notebook(n, k)) + "\n" for n in EXERCISES for k in KINDS}
    files["README.md"] = index()
    return files


def release(out_dir: Path) -> list[Path]:
    """Write the student notebooks and the student index into ``out_dir`` (no solution, no teacher source)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXERCISES:
        path = output_path(name, "student", out_dir)
        path.write_text(nbformat.writes(notebook(name, "student")) + "\n")
        written.append(path)
    (out_dir / "README.md").write_text(index(release=True))
    return written + [out_dir / "README.md"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default notebooks/exercises)")
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ from a fresh rendering")
    parser.add_argument("--release", type=Path, metavar="DIR", help="write the student notebooks for a class to DIR")
    parser.add_argument("--grade", type=Path, metavar="SUBMISSIONS", help="grade the notebooks in this folder")
    parser.add_argument("--csv", type=Path, default=Path("grades.csv"), help="CSV written by --grade")
    parser.add_argument("--feedback", type=Path, metavar="DIR", help="with --grade: one report per notebook here")
    args = parser.parse_args(argv)
    if args.release:
        for path in release(args.release):
            print(f"wrote {path}")
        return 0
    if args.grade:
        from minimace.exercises.grade import grade_folder

        rows = grade_folder(args.grade, args.csv, feedback_dir=args.feedback)
        print(f"graded {len(rows)} notebook(s) into {args.csv}")
        return 0
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
