"""Classroom exercises and labs: a text, a checker that explains, hints in tiers; solutions kept for the teacher.

Each module ``exNN_name.py`` here holds what a student may see and call:

- the text of the exercise (its module docstring, markdown with the paper's equations);
- ``META``: kind (exercise, lab, quiz), difficulty, expected minutes, prerequisite lessons (notebook numbers);
- ``STUDENT_FUNCTIONS``: the names of the functions the student writes;
- ``hint(tier)``: hint 1 (the idea), 2 (which function or index), 3 (nearly the code), each shown on request;
- ``check(*fns)``: runs the student's functions against the package's own stage code or an independent oracle
  (sympy, e3nn, finite differences, ASE) on the checker's own inputs and prints a pass/fail report naming what
  failed and where (l-block, axis, atom, convention, side effect, method).

The solutions are *not* here: they live with the teacher, in ``notebooks/exercises/source/exNN_name.py``
(solution between ``# BEGIN SOLUTION`` / ``# END SOLUTION``, line-by-line notes, and the plausible wrong answers
the tests feed to the checker). ``scripts/render_exercises.py`` renders both into
``notebooks/exercises/NN_name_student.ipynb`` and ``NN_name_solution.ipynb``, writes a release folder for the
class (``--release``) and grades a folder of submitted notebooks into a CSV (``--grade``, or
``python -m minimace.exercises.grade``).

Example
-------
>>> from minimace.exercises import catalogue
>>> [row["name"] for row in catalogue()][:2]
['ex01_radial', 'ex02_spherical_harmonics']
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ._check import CheckResult, ExerciseFailure

EXERCISES = (
    "ex01_radial",
    "ex02_spherical_harmonics",
    "ex03_clebsch_gordan",
    "ex04_atomic_basis",
    "ex05_power_spectrum",
    "ex06_forces",
    "ex07_bug_hunt",
    "ex08_coupling_count",
    "ex09_message",
    "ex10_linear_ace",
    "ex11_md_energy",
    "ex12_loss_weights",
    "ex13_quiz",
)

LESSONS = {  # lesson number -> notebook, for the prerequisites
    "00": "00_rotations_and_spherical_harmonics", "01": "01_one_particle_basis", "02": "02_atomic_basis_A",
    "03": "03_products_and_B_functions", "04": "04_linear_ACE", "05": "05_messages_and_update",
    "06": "06_readout_and_the_full_model", "07": "07_equivariance_lab", "08": "08_same_numbers_as_mace",
    "09": "09_training_on_real_data",
}

__all__ = ["EXERCISES", "LESSONS", "CheckResult", "ExerciseFailure", "catalogue", "load"]


def load(name: str) -> ModuleType:
    """The exercise module ``name`` (one of :data:`EXERCISES`)."""
    if name not in EXERCISES:
        raise KeyError(f"no exercise {name!r}; exercises: {', '.join(EXERCISES)}")
    return importlib.import_module(f"{__name__}.{name}")


def catalogue() -> list[dict]:
    """One dict per exercise, in order, for the index and the website's learning path.

    Keys: ``name``, ``number``, ``title``, ``kind`` ("exercise", "lab" or "quiz"), ``difficulty``
    ("introductory", "intermediate", "advanced"), ``minutes`` (expected time), ``prerequisites`` (lesson
    numbers, see :data:`LESSONS`), ``student`` and ``solution`` (notebook file names in notebooks/exercises).
    """
    rows = []
    for name in EXERCISES:
        module = load(name)
        number, short = name[2:4], name[5:]
        rows.append({
            "name": name, "number": number, "title": module.__doc__.strip().splitlines()[0].lstrip("# "),
            **{key: module.META[key] for key in ("kind", "difficulty", "minutes")},
            "prerequisites": list(module.META["prerequisites"]),
            "student": f"{number}_{short}_student.ipynb", "solution": f"{number}_{short}_solution.ipynb",
        })
    return rows
