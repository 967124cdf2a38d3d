"""Exercises: every solution passes its checker; every stub and every plausible wrong answer fails it;
the rendered notebooks are up to date with their sources."""

import importlib.util
from pathlib import Path

import pytest
import torch

from minimace.exercises import EXERCISES, load

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("render_exercises", ROOT / "scripts" / "render_exercises.py")
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)

WRONG = [(name, wrong) for name in EXERCISES for wrong in load(name).WRONG_ANSWERS]

# what the checker must say about each wrong answer (its diagnosis, not only "fail")
EXPECTED_KIND = {
    ("ex01_radial", "no prefactor"): "normalisation",
    ("ex01_radial", "n from 0"): "convention",
    ("ex02_spherical_harmonics", "unit norm"): "normalisation",
    ("ex02_spherical_harmonics", "textbook axes"): "convention",
    ("ex03_clebsch_gordan", "wigner_3j"): "normalisation",
    ("ex03_clebsch_gordan", "u and v swapped"): "convention",
    ("ex04_atomic_basis", "edge direction"): "convention",
    ("ex04_atomic_basis", "wrong row"): "convention",
    ("ex04_atomic_basis", "mean"): "normalisation",
    ("ex04_atomic_basis", "absolute positions"): "equivariance",
    ("ex05_power_spectrum", "block slices"): "equivariance",
    ("ex05_power_spectrum", "mean over m"): "normalisation",
    ("ex05_power_spectrum", "diagonal only"): "shape",
    ("ex06_forces", "sign"): "convention",
    ("ex06_forces", "energy per atom"): "normalisation",
    ("ex07_bug_hunt", "the buggy layer"): "equivariance",
    ("ex07_bug_hunt", "no gate"): "value",
}


def rendered_function(name: str, kind: str):
    """Execute the setup and function cells of a rendered notebook; return the student function."""
    module = load(name)
    nb = render.notebook(name, kind)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    namespace = {}
    exec(code[0], namespace)  # setup cell: imports, dtype, seed
    exec(next(c for c in code if c.startswith("def ")), namespace)
    return namespace[module.STUDENT_FUNCTION]


@pytest.fixture(autouse=True)
def _keep_default_dtype():
    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)


@pytest.mark.parametrize("name", EXERCISES)
def test_solution_passes(name):
    module = load(name)
    assert module.check(getattr(module, module.STUDENT_FUNCTION), verbose=False).passed
    result = module.check(rendered_function(name, "solution"), verbose=False)
    assert result.passed, str(result)


@pytest.mark.parametrize("name", EXERCISES)
def test_stub_is_not_implemented(name):
    stub = rendered_function(name, "student")
    with pytest.raises(NotImplementedError):
        stub(*[None] * stub.__code__.co_argcount)
    result = load(name).check(stub, verbose=False)
    assert not result and result.status == "not implemented", str(result)


@pytest.mark.parametrize("name, wrong", WRONG)
def test_wrong_answer_fails(name, wrong):
    module = load(name)
    result = module.check(module.WRONG_ANSWERS[wrong], verbose=False)
    assert result.status == "fail", str(result)
    assert result.kind != "error", f"the checker crashed instead of diagnosing:\n{result}"
    if (name, wrong) in EXPECTED_KIND:
        assert result.kind == EXPECTED_KIND[(name, wrong)], str(result)


def test_every_exercise_has_wrong_answers_and_text():
    for name in EXERCISES:
        module = load(name)
        assert len(module.WRONG_ANSWERS) >= 2, name
        assert module.__doc__.startswith("# Exercise") and "Paper" in module.__doc__, name
        assert module.HINT and module.NOTES, name


def test_wrong_dtype_fails():
    """A function that computes in float64 whatever the input fails the float32 step."""
    ex = load("ex01_radial")
    result = ex.check(lambda r, *a: ex.bessel_envelope(r.double(), *a), verbose=False)
    assert result.status == "fail" and "float32" in str(result), str(result)


def test_student_crash_is_reported():
    ex = load("ex03_clebsch_gordan")

    def crashes(u, v):
        return u @ v  # [n, 3] @ [n, 3]: a shape error inside the student's code

    result = ex.check(crashes, verbose=False)
    assert result.status == "fail" and result.kind == "error" and "RuntimeError" in str(result)


def test_check_prints_report(capsys):
    ex = load("ex05_power_spectrum")
    ex.check(ex.WRONG_ANSWERS["mean over m"])
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
    with pytest.raises(ValueError):
        render.render_function("def f():\n    # BEGIN SOLUTION\n    return 1\n", "student", "h")
    with pytest.raises(ValueError):
        render.render_function("def f():\n    return 1\n    # END SOLUTION\n", "student", "h")


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


def test_notebooks_have_no_outputs_and_student_has_no_solution():
    for name in EXERCISES:
        module = load(name)
        source = Path(module.__file__).read_text()
        body = source.split("# BEGIN SOLUTION", 1)[1].split("# END SOLUTION", 1)[0]
        solution_lines = [line.strip() for line in body.splitlines() if line.strip()]
        student = render.notebook(name, "student")
        student_code = "\n".join(c.source for c in student.cells)
        assert not any(line in student_code for line in solution_lines if len(line) > 20), name
        for kind in render.KINDS:
            for cell in render.notebook(name, kind).cells:
                assert cell.get("outputs", []) == [] and cell.get("execution_count") is None


def test_staleness_check_detects_an_edited_source(monkeypatch, tmp_path):
    """Negative control of the staleness test: a changed hint changes the student notebook."""
    committed = (render.DEFAULT_OUT / "01_radial_student.ipynb").read_text()
    monkeypatch.setattr(load("ex01_radial"), "HINT", "a different hint")
    assert render.render_all()["01_radial_student.ipynb"] != committed
    for file_name, text in render.render_all().items():
        (tmp_path / file_name).write_text(text)
    assert render.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "01_radial_student.ipynb").write_text(committed)
    assert render.main(["--check", "--out", str(tmp_path)]) == 1
