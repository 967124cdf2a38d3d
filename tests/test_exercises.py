"""Exercises: every solution passes its checker; every stub and every listed wrong answer fails it with its own
diagnosis; no student rendering gives access to a solution; the rendered notebooks are up to date; release and
grade work."""

import csv
import functools
import importlib.util
import inspect
import json
import types
from pathlib import Path

import nbformat
import pytest
import torch

from minimace.exercises import EXERCISES, LESSONS, catalogue, load
from minimace.exercises._check import KINDS

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("render_exercises", ROOT / "scripts" / "render_exercises.py")
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)

WRONG = [(name, wrong) for name in EXERCISES for wrong in render.teacher_source(name).WRONG_ANSWERS]


def solutions(name):
    """The teacher's solution functions of exercise ``name``, in the order ``check`` takes them."""
    teacher = render.teacher_source(name)
    return [getattr(teacher, fn) for fn in load(name).STUDENT_FUNCTIONS]


def student_namespace(name: str, kind: str = "student", nb=None) -> dict:
    """Execute every code cell of a rendering but the final check cell; return the notebook's namespace."""
    nb = nb or render.notebook(name, kind)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    namespace = {}
    for cell in code[:-1]:
        exec(cell, namespace)
    return namespace


def rendered_functions(name: str, kind: str):
    namespace = student_namespace(name, kind)
    return [namespace[fn] for fn in load(name).STUDENT_FUNCTIONS]


@pytest.fixture(autouse=True)
def _keep_default_dtype():
    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)


@pytest.mark.parametrize("name", EXERCISES)
def test_solution_passes(name):
    module = load(name)
    result = module.check(*solutions(name), verbose=False)
    assert result.passed and result.steps_passed == result.steps_total > 0, str(result)
    result = module.check(*rendered_functions(name, "solution"), verbose=False)
    assert result.passed, str(result)


@pytest.mark.parametrize("name", EXERCISES)
def test_stub_is_not_implemented(name):
    stubs = rendered_functions(name, "student")
    for stub in stubs:
        with pytest.raises(NotImplementedError, match="hint"):
            stub(*[None] * stub.__code__.co_argcount)
    result = load(name).check(*stubs, verbose=False)
    assert not result and result.status == "not implemented", str(result)


@pytest.mark.parametrize("name, wrong", WRONG)
def test_wrong_answer_fails_with_its_diagnosis(name, wrong):
    """Each listed wrong answer fails with the kind and the words (block, axis, atom, convention) listed for it."""
    fn, kind, words = render.teacher_source(name).WRONG_ANSWERS[wrong]
    fns = fn if isinstance(fn, tuple) else (fn,)
    result = load(name).check(*fns, verbose=False)
    assert result.status == "fail", str(result)
    assert result.kind == kind, f"expected a {kind!r} failure:\n{result}"
    assert words in result.message, f"the message should say {words!r}:\n{result}"


def test_every_exercise_has_metadata_hints_and_text():
    kinds, levels = {"exercise", "lab", "quiz"}, {"introductory", "intermediate", "advanced"}
    for name in EXERCISES:
        module, teacher = load(name), render.teacher_source(name)
        assert len(teacher.WRONG_ANSWERS) >= 2, name
        assert module.__doc__.startswith(("# Exercise", "# Lab", "# Quiz")) and "Paper" in module.__doc__, name
        assert len(module.HINTS) == 3 and len(set(module.HINTS)) == 3 and teacher.NOTES, name
        meta = module.META
        assert meta["kind"] in kinds and meta["difficulty"] in levels and 5 <= meta["minutes"] <= 120, name
        assert meta["prerequisites"] and set(meta["prerequisites"]) <= set(LESSONS), name
        for wrong, (_, kind, words) in teacher.WRONG_ANSWERS.items():
            assert kind in KINDS and words, (name, wrong)


def test_catalogue_is_machine_readable_and_in_the_index():
    rows = catalogue()
    assert [r["name"] for r in rows] == list(EXERCISES)
    index = render.index()
    for row in rows:
        assert json.loads(json.dumps(row)) == row  # plain data for the website
        assert (ROOT / "notebooks" / "exercises" / row["student"]).exists()
        assert f"| {row['title']} | {row['kind']} | {row['difficulty']} | {row['minutes']} min |" in index


def test_hints_are_revealed_one_tier_at_a_time(capsys):
    ex = load("ex03_clebsch_gordan")
    ex.hint(1)
    first = capsys.readouterr().out
    assert ex.HINTS[0] in first and ex.HINTS[1] not in first and ex.HINTS[2] not in first
    ex.hint(3)
    assert ex.HINTS[2] in capsys.readouterr().out
    with pytest.raises(ValueError, match="1 to 3"):
        ex.hint(4)


def test_student_crash_is_reported():
    ex = load("ex03_clebsch_gordan")

    def crashes(u, v):
        return u @ v  # [n, 3] @ [n, 3]: a shape error inside the student's code

    result = ex.check(crashes, verbose=False)
    assert result.status == "fail" and result.kind == "error" and "RuntimeError" in str(result)


def test_check_prints_report(capsys):
    ex = load("ex05_power_spectrum")
    ex.check(render.teacher_source("ex05_power_spectrum").WRONG_ANSWERS["mean over m"][0])
    out = capsys.readouterr().out
    assert "FAIL" in out and "normalisation" in out and "sum over m" in out


def test_render_function_sentinels():
    text = "def f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\n"
    student = render.render_function(text, "student", "add y")
    solution = render.render_function(text, "solution", "add y")
    assert "return x + y" not in student and "raise NotImplementedError" in student and "y = 1" in student
    assert "return x + y" in solution and "SOLUTION" not in solution
    namespace = {}
    exec(student, namespace)
    with pytest.raises(NotImplementedError, match="add y"):
        namespace["f"](1)
    for broken in ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "def f():\n    return 1\n    # END SOLUTION\n",
                   "def f():\n    return 1\n"):
        with pytest.raises(ValueError):
            render.render_function(broken, "student", "h")


def test_rendered_notebooks_are_up_to_date():
    """Re-rendering gives byte-identical files (run scripts/render_exercises.py after editing a source)."""
    fresh = render.render_all()
    assert len(fresh) == 2 * len(EXERCISES) + 1  # and README.md
    for file_name, text in fresh.items():
        path = render.DEFAULT_OUT / file_name
        assert path.exists(), f"{path} missing: run scripts/render_exercises.py"
        assert path.read_text() == text, f"{path} is stale: run scripts/render_exercises.py"
    assert fresh == render.render_all()  # deterministic
    committed = {p.name for p in render.DEFAULT_OUT.glob("*.ipynb")}
    assert committed == set(fresh) - {"README.md"}, f"unexpected notebooks: {committed - set(fresh)}"


def test_staleness_check_detects_an_edited_source(monkeypatch, tmp_path):
    """Negative control of the staleness test: a changed expected time changes the student notebook."""
    committed = (render.DEFAULT_OUT / "01_radial_student.ipynb").read_text()
    monkeypatch.setitem(load("ex01_radial").META, "minutes", 99)
    assert render.render_all()["01_radial_student.ipynb"] != committed
    for file_name, text in render.render_all().items():
        (tmp_path / file_name).write_text(text)
    assert render.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "01_radial_student.ipynb").write_text(committed)
    assert render.main(["--check", "--out", str(tmp_path)]) == 1


# ------------------------------------------------------------------ no solution within the student's reach
def _solution_lines(name) -> list[str]:
    source = Path(render.teacher_source(name).__file__).read_text()
    lines = []
    for body in source.split(render.BEGIN)[1:]:
        lines += [line.strip() for line in body.split(render.END)[0].splitlines() if len(line.strip()) > 20]
    return lines


OURS = ("minimace.exercises", "_teacher_")


def _reachable(namespace: dict):
    """Every callable of the exercise machinery a student can reach from the notebook's namespace without
    importing anything new: what the notebook defines, the attributes of the exercise modules (recursively), the
    closures, defaults and globals of their functions, bound methods, partials, wrappers, containers, classes and
    instances. The package's stage code (minimace.radial, ...) is reachable by design and not descended into."""
    allowed = {id(namespace)}

    def ours(f) -> bool:
        return id(getattr(f, "__globals__", None)) in allowed or str(getattr(f, "__module__", "")).startswith(OURS)

    stack, seen = list(namespace.values()), set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            if obj.__name__.startswith(OURS):
                allowed.add(id(vars(obj)))
                stack += list(vars(obj).values())
        elif isinstance(obj, dict):
            stack += list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += list(obj)
        elif isinstance(obj, functools.partial):
            if ours(obj.func):
                yield obj
            stack += [obj.func, *obj.args, *obj.keywords.values()]
        elif isinstance(obj, types.MethodType):
            if ours(obj.__func__):
                yield obj
            stack += [obj.__func__, obj.__self__]
        elif isinstance(obj, types.FunctionType):
            if not ours(obj):
                continue
            yield obj
            allowed.add(id(obj.__globals__))
            stack += [c.cell_contents for c in (obj.__closure__ or ()) if c.cell_contents is not None]
            stack += list(obj.__defaults__ or ()) + list((obj.__kwdefaults__ or {}).values())
            stack += list(obj.__globals__.values())
        elif isinstance(obj, type):
            if obj.__module__.startswith(OURS):
                yield obj
                stack += list(vars(obj).values())
        elif getattr(obj, "__wrapped__", None) is not None:  # functools.lru_cache and friends
            if ours(obj.__wrapped__):
                yield obj
            stack.append(obj.__wrapped__)
        elif type(obj).__module__.startswith(OURS) and hasattr(obj, "__dict__"):
            if callable(obj):
                yield obj
            stack += list(vars(obj).values())


def solution_leaks(name: str, namespace: dict) -> list[str]:
    """Names of the reachable callables that are a solution: the teacher's function itself (same code) or any
    function that passes the checker in place of a solution."""
    module, teacher = load(name), render.teacher_source(name)
    answers = solutions(name)
    codes = {(f.__code__.co_code, f.__code__.co_consts) for f in answers}
    leaks = []
    for obj in _reachable(namespace):
        label = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
        code = getattr(obj, "__code__", None)
        if code is not None and (code.co_code, code.co_consts) in codes:
            leaks.append(f"{label} (the teacher's solution)")
            continue
        if obj is module.check:
            continue
        for slot, answer in enumerate(answers):
            try:
                inspect.signature(obj).bind(*[None] * answer.__code__.co_argcount)
            except (TypeError, ValueError):
                continue
            fns = list(answers)
            fns[slot] = obj
            if module.check(*fns, verbose=False).passed:
                leaks.append(f"{label} (passes the checker as {module.STUDENT_FUNCTIONS[slot]})")
    return leaks


@pytest.mark.parametrize("name", EXERCISES)
def test_no_solution_within_reach_of_the_student_rendering(name):
    namespace = student_namespace(name)
    assert solution_leaks(name, namespace) == []
    student_code = "\n".join(c.source for c in render.notebook(name, "student").cells)
    assert not [line for line in _solution_lines(name) if line in student_code], name


def _leaky_handle(module, code: str = "", **extra) -> types.ModuleType:
    """A copy of the exercise module with ``extra`` attributes and the functions defined by ``code``."""
    fake = types.ModuleType(module.__name__ + "_leaky")
    fake.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")}, **extra)
    exec(code, fake.__dict__)
    return fake


def test_leak_scan_negative_controls(monkeypatch):
    """A handle that exposes the solution, directly, in a default argument, in a partial or re-implemented, and a
    rendering that prints the solution in the student notebook, all fail the scan."""
    name = "ex03_clebsch_gordan"
    solution = solutions(name)[0]
    base = student_namespace(name)
    default = "def check_with_reference(fn, verbose=True, _reference=None):\n    return check(fn, verbose)\n"
    reimplemented = ("def _oracle(u, v):  # the answer under another name, with other code\n"
                     "    from minimace.so3 import clebsch_gordan\n"
                     "    return torch.cat([torch.einsum('abc,na,nb->nc', clebsch_gordan(1, 1, L, dtype=u.dtype), u, v)"
                     " for L in range(3)], -1)\n")
    for code, extra in (("", {"reference": solution}), (default, {}), (reimplemented, {}),
                        ("", {"helpers": {"cg": functools.partial(solution)}})):
        handle = _leaky_handle(base["exercise"], code, **extra)
        if code == default:
            handle.check_with_reference.__defaults__ = (True, solution)
        namespace = {**base, "exercise": handle}
        assert solution_leaks(name, namespace), f"the scan missed the leak {code or list(extra)}"
    assert solution_leaks(name, base) == []
    monkeypatch.setattr(render, "render_function", lambda text, kind, hint=render.STUB: text)  # no stub
    leaky = render.notebook(name, "student")
    assert solution_leaks(name, student_namespace(name, nb=leaky))


# ------------------------------------------------------------------ release and grading
def test_release_has_student_notebooks_only(tmp_path):
    written = render.release(tmp_path / "class")
    names = sorted(p.name for p in written)
    assert names == sorted([render.output_path(n, "student").name for n in EXERCISES] + ["README.md"])
    text = "".join(p.read_text() for p in written)
    assert "solution" not in (tmp_path / "class" / "README.md").read_text().lower()
    for name in EXERCISES:
        assert not [line for line in _solution_lines(name) if line in text], name


def _submission(name: str, code: str):
    nb = render.notebook(name, "student")
    cell = next(c for c in nb.cells if "answer" in c.metadata.get("minimace", {}))
    cell.source = code
    return nb


def test_grade_folder_writes_a_csv(tmp_path):
    """Grading a folder: a solved notebook passes (score 1), a stub is 'not implemented', a wrong answer fails
    with its diagnosis, an unreadable file is a row, not a crash."""
    name = "ex03_clebsch_gordan"
    folder = tmp_path / "submissions"
    folder.mkdir()
    solution_code = next(c.source for c in render.notebook(name, "solution").cells
                         if "answer" in c.metadata.get("minimace", {}))
    swapped = solution_code.replace("torch.einsum(\"abc,na,nb->nc\", C, u, v)", "torch.einsum(\"abc,na,nb->nc\", C, v, u)")
    assert swapped != solution_code
    nbformat.write(_submission(name, solution_code), folder / "alice.ipynb")
    nbformat.write(render.notebook(name, "student"), folder / "bob.ipynb")
    nbformat.write(_submission(name, swapped), folder / "carol.ipynb")
    (folder / "dave.ipynb").write_text("{not json")
    assert render.main(["--grade", str(folder), "--csv", str(tmp_path / "grades.csv"),
                        "--feedback", str(tmp_path / "feedback")]) == 0
    rows = {r["notebook"]: r for r in csv.DictReader((tmp_path / "grades.csv").open())}
    assert set(rows) == {"alice.ipynb", "bob.ipynb", "carol.ipynb", "dave.ipynb"}
    assert rows["alice.ipynb"]["status"] == "pass" and float(rows["alice.ipynb"]["score"]) == 1.0
    assert rows["bob.ipynb"]["status"] == "not implemented" and float(rows["bob.ipynb"]["score"]) == 0.0
    carol = rows["carol.ipynb"]
    assert carol["status"] == "fail" and carol["kind"] == "convention" and "swapped" in carol["message"]
    assert rows["dave.ipynb"]["kind"] == "unreadable"
    assert "PASS" in (tmp_path / "feedback" / "alice.txt").read_text()
