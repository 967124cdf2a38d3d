"""Grade a folder of submitted student notebooks into a CSV (one row per notebook).

Each student notebook rendered by ``scripts/render_exercises.py`` names its exercise in the notebook metadata
(``metadata.minimace.exercise``) and marks its answer cell (``metadata.minimace.answer``). Grading runs, for
each notebook, the exercise's imports and the answer cell in a *fresh* Python process (so one notebook cannot
affect another, and an endless loop is stopped by ``timeout``), then the exercise's ``check`` on the functions
the cell defines. The row holds the status, what failed and where, and a score: the fraction of check steps
passed (1.0 when the whole check passes).

Command line::

    python -m minimace.exercises.grade SUBMISSIONS --csv grades.csv [--feedback DIR] [--timeout 600]

Limitation: the answer cell runs with the student's rights in the grading process; as with any autograder that
executes student code (nbgrader, otter-grader), run it on a machine or in a container you do not mind them
touching, and read the feedback of a surprising full score.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

__all__ = ["grade_notebook", "grade_folder", "COLUMNS"]

COLUMNS = ("notebook", "exercise", "status", "kind", "steps_passed", "steps_total", "score", "message")

# runs in the child process: JSON {"exercise", "code"} on stdin, JSON result on the last line of stdout
_CHILD = r"""
import json, sys, traceback
request = json.loads(sys.stdin.read())
from minimace.exercises import load
module = load(request["exercise"])
namespace = {}
exec("\n".join(module.NOTEBOOK_IMPORTS), namespace)
try:
    exec(compile(request["code"], "<answer cell>", "exec"), namespace)
    missing = [f for f in module.STUDENT_FUNCTIONS if not callable(namespace.get(f))]
    if missing:
        out = {"status": "fail", "kind": "missing", "steps_passed": 0, "steps_total": 0,
               "message": "the answer cell defines no function " + ", ".join(missing)}
    else:
        result = module.check(*[namespace[f] for f in module.STUDENT_FUNCTIONS], verbose=False)
        out = {"status": result.status, "kind": result.kind, "steps_passed": result.steps_passed,
               "steps_total": result.steps_total, "message": result.message, "report": str(result)}
except Exception as err:
    out = {"status": "fail", "kind": "error", "steps_passed": 0, "steps_total": 0,
           "message": "the answer cell raised " + type(err).__name__ + ": " + str(err)}
print("\n@@grade@@" + json.dumps(out))
"""


def _answer(nb) -> tuple[str, str]:
    """(exercise name, source of the answer cells) of a rendered notebook; ValueError if it is not one."""
    name = nb.metadata.get("minimace", {}).get("exercise")
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "answer" in c.metadata.get("minimace", {})]
    if not name or not cells:
        raise ValueError("not a minimace exercise notebook (no metadata.minimace.exercise or no answer cell)")
    return name, "\n\n".join(cells)


def grade_notebook(path, timeout: float = 600.0) -> dict:
    """Grade one submitted notebook: a dict with the keys of :data:`COLUMNS` (and ``report``, the full check)."""
    path = Path(path)
    row = {"notebook": str(path), "exercise": "", "status": "fail", "kind": "", "steps_passed": 0,
           "steps_total": 0, "score": 0.0, "message": "", "report": ""}
    try:
        nb = nbformat.read(path, as_version=4)
        row["exercise"], code = _answer(nb)
    except Exception as err:  # noqa: BLE001 - a broken file is a row of the report, not a crash of the grading
        row.update(kind="unreadable", message=f"{path.name}: {err}")
        return row
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps({"exercise": row["exercise"],
                              "code": code}), capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        row.update(kind="timeout", message=f"the answer did not finish within {timeout:g} s")
        return row
    marker = done.stdout.rfind("@@grade@@")
    if marker < 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        row.update(kind="crash", message=f"the grading process stopped (exit {done.returncode}): {tail[0]}")
        return row
    row.update(json.loads(done.stdout[marker + len("@@grade@@"):]))
    total = row["steps_total"]
    row["score"] = 1.0 if row["status"] == "pass" else round(row["steps_passed"] / total, 3) if total else 0.0
    return row


def grade_folder(folder, csv_path, feedback_dir=None, timeout: float = 600.0) -> list[dict]:
    """Grade every ``*.ipynb`` under ``folder`` (sorted), write the CSV, optionally one feedback text per notebook."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder of submissions {folder}")
    rows = [grade_notebook(path, timeout) for path in sorted(folder.rglob("*.ipynb"))]
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "notebook": str(Path(row["notebook"]).relative_to(folder))})
    if feedback_dir is not None:
        feedback_dir = Path(feedback_dir)
        feedback_dir.mkdir(parents=True, exist_ok=True)
        for row in rows:
            name = Path(row["notebook"]).relative_to(folder).with_suffix(".txt")
            target = feedback_dir / str(name).replace(os.sep, "__")
            target.write_text(row.get("report") or f"{row['status']}: {row['message']}\n")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="folder of returned student notebooks (searched recursively)")
    parser.add_argument("--csv", type=Path, default=Path("grades.csv"), help="output CSV (default grades.csv)")
    parser.add_argument("--feedback", type=Path, help="folder for one feedback report per notebook")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per notebook (default 600)")
    args = parser.parse_args(argv)
    rows = grade_folder(args.submissions, args.csv, args.feedback, args.timeout)
    passed = sum(row["status"] == "pass" for row in rows)
    print(f"graded {len(rows)} notebook(s), {passed} passed; wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
