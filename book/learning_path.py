"""Sphinx extension of the tutorial site: the learning path of the landing page and a note on each lesson.

Everything is read at build time from the notebooks themselves (their header cell: the ``# NN — title`` line,
the bullets under **What you will learn**, the **Prerequisites** line) and from ``build/book/execution.json``
(written by book/build.py: the measured execution time of each notebook). Nothing is a frozen list: a new
lesson ``notebooks/NN_name.ipynb`` appears in the path at the next build.

- ``book/index.md``: the line ``<!-- learning-path -->`` becomes the table of lessons and what each teaches.
- each lesson page: a note after its header, with its execution time, reading time and an "Open in Colab" link.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
STATUS = ROOT / "build" / "book" / "execution.json"
LESSONS = "notebooks/[0-9][0-9]_*.ipynb"
MARKER = "<!-- learning-path -->"
FIGURES_MARKER = "<!-- figures -->"
EXERCISES_MARKER = "<!-- exercises-toctree -->"
EXERCISES = "notebooks/exercises/*.ipynb"
FIGURES = "figures/*.png"
WORDS_PER_MINUTE = 200  # prose, equations counted as words
CODE_LINES_PER_MINUTE = 15  # non-blank lines of code cells
COLAB = "https://colab.research.google.com/github"


@dataclass
class Lesson:
    """What the header cell of a lesson notebook says, and how long it is."""

    path: str  # relative to the repository root, e.g. notebooks/02_atomic_basis_A.ipynb
    number: str
    title: str
    learn: list[str] = field(default_factory=list)
    prerequisites: str = ""
    words: int = 0
    code_lines: int = 0

    @property
    def reading_minutes(self) -> int:
        return max(1, round(self.words / WORDS_PER_MINUTE + self.code_lines / CODE_LINES_PER_MINUTE))


def _header(nb) -> tuple[int, str]:
    """Index and text of the first markdown cell with a level-1 title."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and re.search(r"^# ", cell.source, re.M):
            return index, cell.source
    return -1, ""


def read_lesson(path: Path) -> Lesson:
    """Parse a lesson notebook's header cell and count its prose words and lines of code."""
    nb = nbformat.read(path, as_version=4)
    _, text = _header(nb)
    title = re.search(r"^# (.+)$", text, re.M)
    title = title.group(1).strip() if title else path.stem
    number = path.name[:2]
    title = re.sub(rf"^{number}\s*[—–-]\s*", "", title)
    learn, prerequisites, section = [], "", None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("**What you will learn**"):
            section = "learn"
        elif stripped.startswith("**Prerequisites**"):
            section = "pre"
            prerequisites = re.sub(r"^\*\*Prerequisites\*\*\s*:?\s*", "", stripped)
        elif stripped.startswith("**"):
            section = None
        elif not stripped:
            section = None if section == "pre" else section
        elif section == "learn" and stripped.startswith("- "):
            learn.append(stripped[2:])
        elif section == "learn" and learn:
            learn[-1] += " " + stripped
        elif section == "pre":
            prerequisites += " " + stripped
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    code = sum(len([l for l in c.source.splitlines() if l.strip()]) for c in nb.cells
               if c.cell_type == "code" and "remove-cell" not in c.metadata.get("tags", []))
    return Lesson(str(path.relative_to(ROOT)), number, title, [s.rstrip(";.") for s in learn],
                  prerequisites.strip(), words, code)


def lessons(root: Path = ROOT) -> list[Lesson]:
    return [read_lesson(p) for p in sorted(root.glob(LESSONS))]


def execution_status() -> dict:
    return json.loads(STATUS.read_text()) if STATUS.exists() else {}


def _seconds(entry: dict | None) -> str:
    if not entry or not entry.get("executed") or entry.get("seconds") is None:
        return "not executed"
    return f"{entry['seconds']:.0f} s"


def _cell(text: str) -> str:
    """Text fit for one cell of a Markdown table."""
    return text.replace("|", "\\|").replace("\n", " ")


def learning_path_markdown(lessons: list[Lesson], status: dict) -> str:
    """The table of lessons (order, prerequisites, measured times) and what each teaches."""
    rows = [
        "| # | lesson | prerequisites | executed in (quick mode) | reading |",
        "|---|---|---|---|---|",
    ]
    total_s, total_read = 0.0, 0
    for lesson in lessons:
        entry = status.get(lesson.path)
        if entry and entry.get("executed") and entry.get("seconds") is not None:
            total_s += entry["seconds"]
        total_read += lesson.reading_minutes
        rows.append(f"| {lesson.number} | [{_cell(lesson.title)}](../{lesson.path}) | {_cell(lesson.prerequisites)} "
                    f"| {_seconds(entry)} | ~{lesson.reading_minutes} min |")
    rows.append(f"| | **all lessons** | | **{total_s:.0f} s** | **~{total_read} min** |")
    out = ["\n".join(rows), "",
           f"*Executed in* is the wall time measured by the build that made this site (`make book`), running each "
           f"notebook once in quick mode (`MINIMACE_QUICK=1`, one CPU thread, two notebooks at a time): it is what "
           f"running the cells costs, not how long the lesson takes. Without quick mode some lessons compute much "
           f"more (notebook 09 trains for about 20 minutes on a CPU). *Reading* is an estimate, not a measurement: "
           f"the words of the text cells at {WORDS_PER_MINUTE} words per minute plus the non-blank lines of code at "
           f"{CODE_LINES_PER_MINUTE} lines per minute. Doing the exercises takes longer (their page gives "
           f"the time of each).", "", "## What each lesson teaches", ""]
    for lesson in lessons:
        out += [f"### {lesson.number} — [{lesson.title}](../{lesson.path})", ""]
        out += [f"- {item}" for item in lesson.learn] or ["(no *What you will learn* list in its header)"]
        out += [""]
    return "\n".join(out)


def figures_markdown(root: Path = ROOT) -> str:
    """Every figure of figures/ (as the package regenerates them: ``python -m minimace.figures``)."""
    out = []
    for path in sorted(root.glob(FIGURES)):
        out += [f"```{{figure}} ../{path.relative_to(root).as_posix()}", f":alt: {path.stem}", "",
                f"`{path.relative_to(root).as_posix()}`", "```", ""]
    return "\n".join(out) or "(no figure in figures/)"


def exercises_toctree(root: Path = ROOT) -> str:
    """The sidebar entries of the exercises, named by file (student and solution share a title)."""
    lines = ["```{toctree}", ":hidden:", ":caption: Exercises", ""]
    if (root / "notebooks" / "exercises" / "README.md").exists():
        lines.append("../notebooks/exercises/README")
    # student before solution, exercise by exercise
    for path in sorted(root.glob(EXERCISES), key=lambda p: (p.name.split("_")[0], p.stem.endswith("_solution"),
                                                           p.name)):
        number, _, rest = path.stem.partition("_")
        name, _, kind = rest.rpartition("_")
        label = f"{number} {name.replace('_', ' ')} — {kind}" if name else path.stem.replace("_", " ")
        lines.append(f"{label} <../{path.relative_to(root).with_suffix('').as_posix()}>")
    return "\n".join(lines + ["```"])


def lesson_note(lesson: Lesson, entry: dict | None, repository: str) -> str:
    """The note put under a lesson's header on the site: times and how to run it."""
    org_repo = re.sub(r"^https?://github\.com/", "", repository).strip("/")
    colab = f"{COLAB}/{org_repo}/blob/main/{lesson.path}"
    if entry and entry.get("executed"):
        where = " in the second environment `.venv-mace` (mace-torch)" if entry.get("kernel") != "python3" else ""
        ran = (f"The outputs below were computed by the build of this site{where}, in quick mode "
               f"(`MINIMACE_QUICK=1`): **{_seconds(entry)}** of execution.")
    else:
        why = (entry or {}).get("why", "it was not executed by this build")
        ran = f"**This page shows the notebook without outputs**: {why}."
    return (f":::{{note}}\n{ran} Reading: about **{lesson.reading_minutes} min** (estimate). "
            f"Run it yourself: [Open in Colab]({colab}) (the first cell installs minimace there), or "
            f"`jupyter lab {lesson.path}` in a clone after `make setup`.\n:::")


def _source_read(app, docname: str, source: list[str]) -> None:
    if docname == app.config.root_doc and MARKER in source[0]:
        source[0] = source[0].replace(MARKER, learning_path_markdown(lessons(), execution_status()))
        source[0] = source[0].replace(FIGURES_MARKER, figures_markdown())
        source[0] = source[0].replace(EXERCISES_MARKER, exercises_toctree())
        return
    path = ROOT / f"{docname}.ipynb"
    entry = execution_status().get(f"{docname}.ipynb")
    if path not in set(ROOT.glob(LESSONS)):
        if entry and not entry.get("executed"):  # e.g. a student notebook: say why there are no outputs
            nb = nbformat.reads(source[0], as_version=4)
            index, _ = _header(nb)
            nb.cells.insert(index + 1, nbformat.v4.new_markdown_cell(
                f":::{{note}}\nThis page shows the notebook without outputs: {entry['why']}.\n:::", id="site-note"))
            source[0] = nbformat.writes(nb)
        return
    nb = nbformat.reads(source[0], as_version=4)
    index, _ = _header(nb)
    note = lesson_note(read_lesson(path), entry, app.config.html_theme_options["repository_url"])
    nb.cells.insert(index + 1, nbformat.v4.new_markdown_cell(note, id="site-note"))
    source[0] = nbformat.writes(nb)


def _config_inited(app, config) -> None:
    skipped = [path for path, entry in execution_status().items()
               if isinstance(entry, dict) and not entry.get("executed")]
    config.nb_execution_excludepatterns = list(config.nb_execution_excludepatterns) + skipped


def _always_reread(app, env, added, changed, removed) -> list[str]:
    """The landing page and the lessons carry the latest timings: read them again at every build."""
    return [app.config.root_doc] + [p.removesuffix(".ipynb") for p in (l.path for l in lessons())]


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _always_reread)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
