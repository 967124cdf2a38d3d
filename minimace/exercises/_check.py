"""The machinery shared by the exercise checkers: run a student's function, report pass / fail clearly.

A checker is a list of *steps*. Each step calls the student's function on the checker's own inputs and compares
the answer with the package's own stage code or an independent oracle (sympy, e3nn, finite differences,
``assert_equivariant``). The first step that fails stops the check and names what is wrong and where: the
``shape`` (which axis), the ``convention`` or ``normalisation`` (which l-block, which axis), ``equivariance``,
a ``side effect`` on the caller's tensors, the ``method`` (finite differences where autograd was asked), an
``answer`` to a conceptual question, or the ``value`` (with the position of the largest difference).

Reference values are computed inside ``check`` on the checker's inputs only: no function of this package
module takes the student's arguments and returns the answer.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..testing import assert_equivariant

__all__ = ["CheckResult", "ExerciseFailure", "run_checks", "expect_shape", "expect_close", "expect_equivariant",
           "expect_blocks", "first_match", "make_hint", "DTYPES", "KINDS", "tolerance"]

DTYPES = (torch.float64, torch.float32)

#: what a failure can be about (``ExerciseFailure.kind``)
KINDS = ("shape", "convention", "normalisation", "equivariance", "side effect", "method", "answer", "value")

#: (atol, rtol) for comparing a student's answer with the reference in each dtype
_TOLERANCES = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-4)}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """``(atol, rtol)`` for values of the given dtype."""
    return _TOLERANCES[dtype]


class ExerciseFailure(AssertionError):
    """A check step failed. ``kind`` (one of :data:`KINDS`) says what is wrong, ``message`` what and where."""

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
        What failed (one of :data:`KINDS`, or ``"error"`` when the student's code raised), empty when passed.
    lines : list of str
        The report, one line per step.
    steps_passed, steps_total : int
        How many steps passed, out of how many (the grade of ``minimace.exercises.grade``).
    """

    exercise: str
    status: str = "pass"
    kind: str = ""
    lines: list = field(default_factory=list)
    steps_passed: int = 0
    steps_total: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def message(self) -> str:
        """The lines of the failed steps (empty when passed)."""
        return "\n".join(line for line in self.lines if not line.startswith("ok ")) if not self.passed else ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return "\n".join([f"{self.exercise}: {self.status.upper()}"] + [f"  {line}" for line in self.lines])

    def __repr__(self) -> str:
        return f"CheckResult({self.exercise!r}, status={self.status!r}, kind={self.kind!r})"


def run_checks(exercise: str, steps: Sequence[tuple[str, Callable[[], str | None]]],
               verbose: bool = True, keep_going: bool = False) -> CheckResult:
    """Run ``steps`` (pairs ``(name, step)``) in order, stop at the first failure and print a report.

    With ``keep_going`` (independent steps, e.g. the questions of a quiz) every step runs after a failure of
    another; the result keeps the kind of the first failure. The first step always gates the others.

    A step returns an optional note (shown after "ok") or raises :class:`ExerciseFailure`.
    ``NotImplementedError`` means the student has not written the function yet: status "not implemented".
    Any other exception is reported with the line of the student's code that raised it.
    """
    result = CheckResult(exercise, steps_total=len(steps))
    for index, (name, step) in enumerate(steps):
        failed = True
        try:
            note = step()
            failed = False
        except NotImplementedError as err:
            result.status, result.kind = "not implemented", "not implemented"
            result.lines.append(f"not implemented yet ({err})" if str(err) else "not implemented yet")
            break
        except ExerciseFailure as err:
            if result.status == "pass":
                result.status, result.kind = "fail", err.kind
            result.lines.append(f"FAIL {name} — {err.kind}: {err.message}")
        except Exception as err:  # noqa: BLE001 - a student's bug of any kind is reported, not raised
            where = traceback.extract_tb(err.__traceback__)[-1]
            if result.status == "pass":
                result.status, result.kind = "fail", "error"
            result.lines.append(f"FAIL {name} — error: {type(err).__name__}: {err} "
                                f"(line {where.lineno} of {where.name})")
        if failed:
            if not keep_going or index == 0:
                break
            continue
        result.steps_passed += 1
        result.lines.append(f"ok   {name}" + (f" ({note})" if note else ""))
    if verbose:
        print(result)
    return result


def make_hint(hints: Sequence[str]) -> Callable[[int], None]:
    """``hint(tier)`` printing hint ``tier`` of ``hints`` (1: the concept, 2: which function or index,
    3: nearly the code); each tier is shown only when asked for."""
    names = {1: "the idea", 2: "where to look", 3: "nearly the code"}

    def hint(tier: int = 1) -> None:
        if not 1 <= int(tier) <= len(hints):
            raise ValueError(f"hints are numbered 1 to {len(hints)}, got {tier}")
        print(f"Hint {tier}/{len(hints)} ({names.get(int(tier), 'more')}): {hints[int(tier) - 1]}")

    hint.__doc__ = f"Print hint 1, 2 or {len(hints)} (from the idea to nearly the code)."
    return hint


def _axes_text(shape, axes) -> str:
    return "[" + ", ".join(f"{a}={n}" for a, n in zip(axes, shape)) + "]" if axes else str(tuple(shape))


def expect_shape(value, shape: tuple, what: str, axes: Sequence[str] | None = None) -> None:
    """Raise a ``shape`` failure unless ``value`` is a tensor of exactly ``shape``.

    With axis names ``axes`` (one per axis; the checkers choose inputs whose axis lengths all differ), a
    transposed answer is named as such: which of the student's axes holds which quantity.
    """
    if not isinstance(value, torch.Tensor):
        raise ExerciseFailure("shape", f"{what} should be a torch.Tensor, got {type(value).__name__}")
    got, shape = tuple(value.shape), tuple(shape)
    if got == shape:
        return
    if axes and sorted(got) == sorted(shape):
        def holds(n):
            return " or ".join(a for a, m in zip(axes, shape) if m == n)

        where = [f"axis {i} holds {holds(n)} (length {n})" for i, n in enumerate(got) if shape[i] != n]
        raise ExerciseFailure("shape", f"{what}: axes in the wrong order — {'; '.join(where)}; expected "
                              f"{_axes_text(shape, axes)}")
    raise ExerciseFailure("shape", f"{what} has shape {got}, expected {_axes_text(shape, axes)}")


def expect_dtype(value: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """Raise a ``value`` failure unless ``value`` keeps the dtype of the inputs."""
    if value.dtype != dtype:
        raise ExerciseFailure("value", f"{what} is {value.dtype} for {dtype} inputs: keep the dtype of the inputs")


def max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |actual - expected|`` as a float (0 for empty tensors)."""
    return (actual.detach() - expected.detach()).abs().max().item() if expected.numel() else 0.0


def _where(actual: torch.Tensor, expected: torch.Tensor, axes: Sequence[str] | None) -> str:
    """`` at [atom 3, k=1, ...]``: the position of the largest difference."""
    if not expected.numel() or not axes:
        return ""
    flat = (actual.detach() - expected.detach()).abs().argmax().item()
    index = torch.unravel_index(torch.tensor(flat), expected.shape)
    return " at [" + ", ".join(f"{a} {int(i)}" for a, i in zip(axes, index)) + "]"


def expect_close(actual: torch.Tensor, expected: torch.Tensor, what: str, kind: str = "value",
                 axes: Sequence[str] | None = None) -> str:
    """Raise a failure of the given ``kind`` unless ``actual`` equals ``expected`` within the dtype's tolerance;
    the message gives the position of the largest difference (named by ``axes``)."""
    expect_shape(actual, tuple(expected.shape), what, axes)
    expect_dtype(actual, expected.dtype, what)
    atol, rtol = tolerance(expected.dtype)
    err, scale = max_error(actual, expected), expected.detach().abs().max().item() if expected.numel() else 0.0
    if not err <= atol + rtol * scale:
        raise ExerciseFailure(kind, f"{what} differs from the reference by up to {err:.3e}"
                                    f"{_where(actual, expected, axes)} (allowed {atol + rtol * scale:.1e})")
    return f"max error {err:.1e}"


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.detach(), b.detach(), rtol=1e-7, atol=1e-9))


def first_match(out: torch.Tensor, candidates: Sequence[tuple[torch.Tensor, str, str]]) -> None:
    """Raise the failure ``(kind, message)`` of the first candidate ``(tensor, kind, message)`` equal to ``out``.

    The candidates are the known wrong answers, computed by the checker on its own inputs (float64).
    """
    for value, kind, message in candidates:
        if _close(out, value):
            raise ExerciseFailure(kind, message)


def expect_blocks(out: torch.Tensor, ref: torch.Tensor, blocks: Sequence[tuple[str, slice]], what: str,
                  axis: int = -1, notes: dict | None = None) -> None:
    """Compare ``out`` with ``ref`` block by block along ``axis`` (e.g. the l- or L-blocks of an irreps axis);
    raise a failure naming the first wrong block and what is wrong with it.

    ``blocks`` are ``(label, slice)`` pairs, e.g. ``("L=2", slice(4, 9))``. A block that is a constant multiple
    of the reference is a ``normalisation`` failure (with the factor); a block that spans the right space in
    another basis (another order of m, signs, another polar axis) is a ``convention`` failure; anything else is
    a ``value`` failure of that block. Call it only when ``out`` and ``ref`` have the same shape (float64).
    """
    notes = notes or {}  # kind -> advice appended to its message
    right = []
    for label, sl in blocks:
        a, b = out.detach().movedim(axis, -1)[..., sl], ref.detach().movedim(axis, -1)[..., sl]
        if _close(a, b):
            right.append(label)
            continue
        prefix = (f"{' and '.join(right)} {'is' if len(right) == 1 else 'are'} right; " if right else "") + f"the {label} block of {what}"
        a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        if (b2 * b2).sum() > 0:
            ratio = (a2 * b2).sum() / (b2 * b2).sum()
            if _close(a2, ratio * b2):
                raise ExerciseFailure("normalisation", f"{prefix} is {ratio.item():.6g} × the reference "
                                      "(a normalisation factor)" + notes.get("normalisation", ""))
        M = torch.linalg.lstsq(b2, a2).solution  # a ≈ b @ M: the same space in another basis?
        if _close(a2, b2 @ M):
            kind = ("components permuted or sign-flipped" if torch.allclose(M.abs().round(), M.abs(), atol=1e-6)
                    else "other linear combinations of the same components")
            raise ExerciseFailure("convention", f"{prefix} spans the right space but in another basis "
                                  f"({kind})" + notes.get("convention", ": use e3nn's real basis (y is the polar "
                                                          "axis, m = -l..l in order)"))
        raise ExerciseFailure("value", f"{prefix} is wrong (max difference {max_error(a, b):.3e}; "
                              "not a factor, not a change of basis)")


def expect_equivariant(fn: Callable, args, irreps_in, irreps_out, **kwargs) -> str:
    """Raise an ``equivariance`` failure (with the report of ``assert_equivariant``) unless ``fn`` passes it."""
    try:
        report = assert_equivariant(fn, args, irreps_in, irreps_out, **kwargs)
    except AssertionError as err:
        raise ExerciseFailure("equivariance", str(err).replace("\n", "\n       ")) from None
    return f"largest error {report.max_error:.1e}"


def expect_answer(question: str, given, correct, explanations: dict | None = None, unit: str = "") -> str:
    """Raise an ``answer`` failure unless ``given == correct``; a known wrong answer gets its explanation."""
    if given is None:
        raise NotImplementedError(f"no answer yet to: {question}")
    if given == correct:
        return f"{question} {given}{unit}"
    why = (explanations or {}).get(given, "")
    raise ExerciseFailure("answer", f"{question} — {given!r} is not right" + (f": {why}" if why else ""))
