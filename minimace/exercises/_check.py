"""The machinery shared by the exercise checkers: run a student's function, report pass / fail clearly.

A checker is a list of *steps*. Each step calls the student's function on prepared inputs and compares
the answer with the package's own implementation or an independent oracle (sympy, finite differences,
``assert_equivariant``). The first step that fails stops the check and names what is wrong: the
``shape``, the ``convention``, the ``normalisation``, ``equivariance`` or the ``value``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..testing import assert_equivariant

__all__ = ["CheckResult", "ExerciseFailure", "run_checks", "expect_shape", "expect_close", "expect_equivariant",
           "DTYPES", "tolerance"]

DTYPES = (torch.float64, torch.float32)

#: (atol, rtol) for comparing a student's answer with the reference in each dtype
_TOLERANCES = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-4)}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """``(atol, rtol)`` for values of the given dtype."""
    return _TOLERANCES[dtype]


class ExerciseFailure(AssertionError):
    """A check step failed. ``kind`` says what is wrong (shape, convention, normalisation, equivariance, value)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message = kind, message


@dataclass
class CheckResult:
    """Outcome of ``check(fn)``: truthy only when every step passed.

    Attributes
    ----------
    exercise : str
        Title of the exercise.
    status : str
        ``"pass"``, ``"fail"`` or ``"not implemented"``.
    kind : str
        What failed (``"shape"``, ``"convention"``, ``"normalisation"``, ``"equivariance"``, ``"value"``,
        ``"error"``), empty when passed.
    lines : list of str
        The report, one line per step.
    """

    exercise: str
    status: str = "pass"
    kind: str = ""
    lines: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return "\n".join([f"{self.exercise}: {self.status.upper()}"] + [f"  {line}" for line in self.lines])

    def __repr__(self) -> str:
        return f"CheckResult({self.exercise!r}, status={self.status!r}, kind={self.kind!r})"


def run_checks(exercise: str, steps: Sequence[tuple[str, Callable[[], str | None]]],
               verbose: bool = True) -> CheckResult:
    """Run ``steps`` (pairs ``(name, step)``) in order, stop at the first failure and print a report.

    A step returns an optional note (shown after "ok") or raises :class:`ExerciseFailure`.
    ``NotImplementedError`` means the student has not written the function yet: status "not implemented".
    Any other exception is reported with the line of the student's code that raised it.
    """
    result = CheckResult(exercise)
    for name, step in steps:
        try:
            note = step()
        except NotImplementedError as err:
            result.status, result.kind = "not implemented", "not implemented"
            result.lines.append(f"not implemented yet ({err})" if str(err) else "not implemented yet")
            break
        except ExerciseFailure as err:
            result.status, result.kind = "fail", err.kind
            result.lines.append(f"FAIL {name} — {err.kind}: {err.message}")
            break
        except Exception as err:  # noqa: BLE001 - a student's bug of any kind is reported, not raised
            where = traceback.extract_tb(err.__traceback__)[-1]
            result.status, result.kind = "fail", "error"
            result.lines.append(f"FAIL {name} — error: {type(err).__name__}: {err} "
                                f"(line {where.lineno} of {where.name})")
            break
        result.lines.append(f"ok   {name}" + (f" ({note})" if note else ""))
    if verbose:
        print(result)
    return result


def expect_shape(value, shape: tuple, what: str) -> None:
    """Raise a ``shape`` failure unless ``value`` is a tensor of exactly ``shape``."""
    if not isinstance(value, torch.Tensor):
        raise ExerciseFailure("shape", f"{what} should be a torch.Tensor, got {type(value).__name__}")
    if tuple(value.shape) != tuple(shape):
        raise ExerciseFailure("shape", f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}")


def expect_dtype(value: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """Raise a ``value`` failure unless ``value`` keeps the dtype of the inputs."""
    if value.dtype != dtype:
        raise ExerciseFailure("value", f"{what} is {value.dtype} for {dtype} inputs: keep the dtype of the inputs")


def max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |actual - expected|`` as a float (0 for empty tensors)."""
    return (actual.detach() - expected.detach()).abs().max().item() if expected.numel() else 0.0


def expect_close(actual: torch.Tensor, expected: torch.Tensor, what: str, kind: str = "value") -> str:
    """Raise a failure of the given ``kind`` unless ``actual`` equals ``expected`` within the dtype's tolerance."""
    expect_shape(actual, tuple(expected.shape), what)
    expect_dtype(actual, expected.dtype, what)
    atol, rtol = tolerance(expected.dtype)
    err, scale = max_error(actual, expected), expected.detach().abs().max().item() if expected.numel() else 0.0
    if not err <= atol + rtol * scale:
        raise ExerciseFailure(kind, f"{what} differs from the reference by up to {err:.3e} "
                                    f"(allowed {atol + rtol * scale:.1e})")
    return f"max error {err:.1e}"


def expect_equivariant(fn: Callable, args, irreps_in, irreps_out, **kwargs) -> str:
    """Raise an ``equivariance`` failure (with the report of ``assert_equivariant``) unless ``fn`` passes it."""
    try:
        report = assert_equivariant(fn, args, irreps_in, irreps_out, **kwargs)
    except AssertionError as err:
        raise ExerciseFailure("equivariance", str(err).replace("\n", "\n       ")) from None
    return f"largest error {report.max_error:.1e}"
