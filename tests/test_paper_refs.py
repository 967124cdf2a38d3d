"""Every reference to the MACE paper in minimace/ and notebooks/ agrees with docs/paper_equations.md.

The table in docs/paper_equations.md (arXiv:2206.07697 v2 numbering) is the source of truth. For each file:
- every "Eq. N" / "Eqs. N–M" / "Eq. (N)" of the MACE paper has 1 <= N <= 13;
- a file citing a single equation N is named for N in the table (columns minimace, lesson, also cited by);
- a range (e.g. "Eqs. 7–13") is allowed when the file is named for at least one equation of the range;
- every "Appendix X.Y" / "App. X.Y" is one the table lists; no "Fig. N" of the paper is cited;
- the misreadings of the table's last section (φ as Eq. 7, product basis as Eq. 9, ...) do not occur.
References to other papers (DimeNet, Drautz, ...) are recognised by the nearest paper name before them.
Negative controls: the same checker must reject seeded wrong references.
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "paper_equations.md"
N_EQUATIONS = 13

MACE_MARKERS = ("MACE", "Batatia", "2206.07697", "paper")
OTHER_PAPERS = ("DimeNet", "Klicpera", "Drautz", "PRB", "Bartók", "Kondor", "Shapeev", "Thompson", "Behler",
                "Nigam", "Dusson")

EQ = re.compile(r"\bEqs?\.\s*\(?(\d+)\)?((?:\s*(?:[–-]|,|and)\s*\(?\d+\)?)*)")
APPENDIX = re.compile(r"\b(?:Appendix|App\.)\s+([A-Z]\.\d+)")
FIG = re.compile(r"\bFig\.\s*(\d+)")
TICKS = re.compile(r"`([^`]+)`")


# ------------------------------------------------------------------------------------------ the table
def _rows(text: str, heading: str) -> list[list[str]]:
    """Cells of the table rows under the markdown heading ``heading`` (header and rule lines dropped)."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    return [r for r in rows[2:]]


def _file_keys(token: str) -> set[str]:
    """Repository paths (or folder prefixes) a backticked token of the table names."""
    if re.fullmatch(r"\d\d_\w+", token):
        return {f"notebooks/{token}.py"}
    if token.endswith(".py"):
        return {f"minimace/{token}"}
    module = token.split(".")[0]
    if module == "so3":
        return {"minimace/so3/"}
    if re.fullmatch(r"[a-z_]+", module) and (ROOT / "minimace" / f"{module}.py").exists():
        return {f"minimace/{module}.py"}
    return set()


@lru_cache(maxsize=None)
def table(text: str | None = None) -> dict:
    """{"equations": {N: {"files": set, "tokens": list, "lesson": str}}, "appendices": set, "misreadings": list}"""
    text = TABLE.read_text() if text is None else text
    equations = {}
    for cells in _rows(text, "Equations"):
        n = int(re.fullmatch(r"Eq\. (\d+)", cells[0]).group(1))
        tokens = [t for col in (2, 3, 4) for t in TICKS.findall(cells[col])]
        files = set().union(*(_file_keys(t) for t in tokens)) if tokens else set()
        equations[n] = {"files": files, "tokens": tokens, "lesson": cells[3]}
    appendices = {m.group(1) for cells in _rows(text, "Appendix and figures") for m in APPENDIX.finditer(cells[0])}
    misreadings = []
    for cells in _rows(text, "Misreadings the test rejects"):
        misreadings.append({"words": TICKS.findall(cells[0]), "unless": TICKS.findall(cells[1]),
                            "wrong": cells[2], "right": cells[3]})
    return {"equations": equations, "appendices": appendices, "misreadings": misreadings}


# ------------------------------------------------------------------------------------------ the checker
def _numbers(first: str, tail: str) -> tuple[list[int], bool]:
    """Equation numbers of one reference and whether it is a range ("7–13")."""
    numbers, is_range = [int(first)], False
    for sep, num in re.findall(r"\s*([–-]|,|and)\s*\(?(\d+)\)?", tail):
        if sep in "–-":
            is_range = True
            numbers.extend(range(numbers[-1] + 1, int(num) + 1))
        else:
            numbers.append(int(num))
    return numbers, is_range


def _cites_other_paper(text: str, start: int) -> bool:
    """True when the nearest paper name before ``start`` (within 150 characters) is not the MACE paper."""
    window = text[max(0, start - 150):start]
    best_other = max((window.rfind(w) for w in OTHER_PAPERS), default=-1)
    best_mace = max((window.rfind(w) for w in MACE_MARKERS), default=-1)
    return best_other > best_mace


def _allowed(key: str, files: set[str]) -> bool:
    return any(key == f or (f.endswith("/") and key.startswith(f)) for f in files)


def check_text(key: str, text: str, tab: dict | None = None) -> list[str]:
    """Problems of the paper references in ``text``, the content of repository file ``key``."""
    tab = table() if tab is None else tab
    eqs, problems = tab["equations"], []
    line_of = lambda pos: text.count("\n", 0, pos) + 1  # noqa: E731
    singles_by_line: dict[int, list[str]] = {}
    for m in EQ.finditer(text):
        if _cites_other_paper(text, m.start()):
            continue
        numbers, is_range = _numbers(m.group(1), m.group(2))
        where = f"{key}:{line_of(m.start())}: {m.group(0).strip()!r}"
        bad = [n for n in numbers if not 1 <= n <= N_EQUATIONS]
        if bad:
            problems.append(f"{where}: the paper has Eqs. 1–{N_EQUATIONS}, not {bad}")
            continue
        if not key.startswith(("minimace/", "notebooks/")):
            continue                                   # README and docs: numbers, appendices, misreadings only
        if is_range:
            if not any(_allowed(key, eqs[n]["files"]) for n in numbers):
                problems.append(f"{where}: the table names this file for none of Eqs. {numbers}")
        else:
            for n in numbers:
                singles_by_line.setdefault(line_of(m.start()), []).append(f"Eq. {n}")
                if not _allowed(key, eqs[n]["files"]):
                    problems.append(f"{where}: Eq. {n} is {eqs[n]['tokens'][:3]}…; the table does not name this "
                                    "file for it (fix the reference, or add the file to the table)")
    for m in APPENDIX.finditer(text):
        if not _cites_other_paper(text, m.start()) and m.group(1) not in tab["appendices"]:
            problems.append(f"{key}:{line_of(m.start())}: Appendix {m.group(1)} is not in the table "
                            f"(appendices: {sorted(tab['appendices'])})")
    for m in FIG.finditer(text):
        if not _cites_other_paper(text, m.start()):
            singles_by_line.setdefault(line_of(m.start()), []).append(f"Fig. {m.group(1)}")
            problems.append(f"{key}:{line_of(m.start())}: Fig. {m.group(1)} of the paper is cited; the table cites "
                            "no figure of the paper")
    lines = text.splitlines()
    for number, refs in singles_by_line.items():
        line = lines[number - 1]
        for rule in tab["misreadings"]:
            if rule["wrong"] in refs and any(w in line for w in rule["words"]) \
                    and not any(w in line for w in rule["unless"]):
                problems.append(f"{key}:{number}: {rule['wrong']} next to {rule['words']}: that is "
                                f"{rule['right']}  | {line.strip()}")
    return problems


def cited_files() -> list[str]:
    """minimace/, the lessons, README.md and docs/ (this table excepted: it quotes the misreadings)."""
    files = sorted(ROOT.glob("minimace/**/*.py")) + sorted(ROOT.glob("notebooks/*.py"))
    files += sorted(ROOT.glob("notebooks/exercises/source/*.py"))
    files += [ROOT / "README.md"] + [p for p in sorted(ROOT.glob("docs/*.md")) if p != TABLE]
    return [str(p.relative_to(ROOT)) for p in files]


# ------------------------------------------------------------------------------------------ the tests
def test_table_is_complete_and_names_real_code():
    tab = table()
    assert sorted(tab["equations"]) == list(range(1, N_EQUATIONS + 1))
    assert tab["appendices"] == {"A.5"}
    assert len(tab["misreadings"]) >= 4
    for n, row in tab["equations"].items():
        assert row["files"], f"Eq. {n}: no file named"
        for token in row["tokens"]:
            if re.fullmatch(r"\d\d_\w+", token):
                assert (ROOT / "notebooks" / f"{token}.py").exists(), f"Eq. {n}: no notebook {token}"
            elif token.endswith(".py"):
                assert (ROOT / "minimace" / token).exists(), f"Eq. {n}: no file minimace/{token}"
            else:
                obj = importlib.import_module(f"minimace.{token.split('.')[0]}")
                for attr in token.split(".")[1:]:
                    obj = getattr(obj, attr)  # AttributeError names the missing function


OWN_LESSONS = ("00_rotations_and_spherical_harmonics", "05_messages_and_update", "06_readout_and_the_full_model",
               "07_equivariance_lab", "09_training_on_real_data")


def test_lesson_sections_exist():
    """'`NN_x` § K. Title' in the lesson column names a section heading of that notebook (owned lessons)."""
    for n, row in table()["equations"].items():
        for notebook, number, title in re.findall(r"`(\d\d_\w+)` § (\d+)\.\s*([^;`]*)", row["lesson"]):
            if notebook not in OWN_LESSONS:
                continue
            headings = re.findall(r"^# ## (.*)$", (ROOT / "notebooks" / f"{notebook}.py").read_text(), re.M)
            assert any(h.startswith(f"{number}. {title.strip()}") for h in headings), \
                f"Eq. {n}: {notebook} has no section '{number}. {title.strip()}' (headings: {headings})"


@pytest.mark.parametrize("key", cited_files())
def test_references_agree_with_the_table(key):
    problems = check_text(key, (ROOT / key).read_text())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("seed, expected", [
    (("Eq. 12", "Eq. 7"), "the table does not name this file"),                       # update.py cites Eq. 7
    (("Eq. 12", "Eq. 14"), "not [14]"),                                                # no such equation
    (("Eq. 12", "Appendix A.2"), "Appendix A.2 is not in the table"),                  # the old radial reference
    (("Eq. 12", "Fig. 1"), "Fig. 1 of the paper is cited"),
])
def test_negative_controls_seeded_into_a_clean_file(seed, expected):
    key = "minimace/update.py"
    text = (ROOT / key).read_text()
    assert not check_text(key, text)
    broken = text.replace(*seed, 1)
    assert broken != text
    assert any(expected in p for p in check_text(key, broken)), check_text(key, broken)


@pytest.mark.parametrize("line, expected", [
    ("Y, radial = model.edge_embedding(vectors)    # Eq. 7", "Eq. 7 next to"),          # φ called Eq. 7
    ("the product basis of A (Eq. 9)", "Eq. 9 next to"),
    ("equivariance (paper, Eq. 1)", "Eq. 1 next to"),
    ("the receptive field of message passing (MACE paper, Fig. 1)", "Fig. 1 next to"),
])
def test_negative_controls_misreadings(line, expected):
    """Misreadings are caught even in a file the table names for that equation (notebook 06 cites Eqs. 1–13)."""
    key = "notebooks/06_readout_and_the_full_model.py"
    assert any(expected in p for p in check_text(key, f"# MACE\n# {line}\n")), check_text(key, f"# {line}\n")


def test_other_papers_and_legit_references_pass():
    key = "notebooks/06_readout_and_the_full_model.py"
    fine = ("# the envelope (Klicpera et al., DimeNet, Eq. 8) and Drautz, PRB 99, 014104\n# (2019), Eq. (4)\n"
            "# MACE Eq. 7: Σ_{j₁,j₂} φ_{j₁} ⊗ φ_{j₂} includes j₁ = j₂ (the density trick)\n"
            "# the stages (MACE Eqs. 7–13); Eqs. 8, 10, 11, 12\n")
    assert check_text(key, fine) == []
