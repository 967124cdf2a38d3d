"""Classroom exercises: one source each, two renderings (student stubs, solutions), an automatic checker.

Each module ``exNN_name.py`` holds

- the text of the exercise (its module docstring, markdown with the paper's equations);
- the function the student writes (``STUDENT_FUNCTION``), whose body is the solution between the lines
  ``# BEGIN SOLUTION`` and ``# END SOLUTION``; the student rendering replaces them by
  ``raise NotImplementedError(HINT)``;
- ``check(fn)``, which runs ``fn`` against the package's own implementation or an independent oracle and
  prints a pass/fail report naming what is wrong (shape, convention, normalisation, equivariance, value);
- ``WRONG_ANSWERS``, plausible mistakes that the checker must reject (negative controls, used by the tests).

``scripts/render_exercises.py`` writes ``notebooks/exercises/NN_name_student.ipynb`` and
``NN_name_solution.ipynb`` from these sources.

Example
-------
>>> from minimace.exercises import ex01_radial
>>> result = ex01_radial.check(ex01_radial.bessel_envelope, verbose=False)
>>> result.passed
True
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
)

__all__ = ["EXERCISES", "CheckResult", "ExerciseFailure", "load"]


def load(name: str) -> ModuleType:
    """The exercise module ``name`` (one of :data:`EXERCISES`)."""
    if name not in EXERCISES:
        raise KeyError(f"no exercise {name!r}; exercises: {', '.join(EXERCISES)}")
    return importlib.import_module(f"{__name__}.{name}")
