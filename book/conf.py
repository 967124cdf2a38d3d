"""Sphinx configuration of the tutorial website (`make book`; see book/build.py).

The source folder is the repository root, so every relative link of the README, the docs and the notebooks
resolves as it does on disk; ``include_patterns`` picks the pages (globs: new lessons, exercises and docs
are found at build time). The landing page is book/index.md; the site's root index.html redirects to it.
"""

import sys
import tomllib
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
sys.path.insert(0, str(BOOK))

with open(ROOT / "pyproject.toml", "rb") as _f:
    _project = tomllib.load(_f)["project"]
REPOSITORY = _project["urls"]["Repository"]

project = "minimace"
author = "the minimace developers"
copyright = "the minimace developers, MIT licence"
release = _project["version"]

extensions = [
    "myst_nb",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/mathjax: no CDN, the site works offline
    "learning_path",  # book/learning_path.py: the generated learning path and per-lesson notes
]

root_doc = "book/index"
include_patterns = [
    "book/*.md",
    "README.md",
    "docs/*.md",
    "benchmarks/*.md",
    "notebooks/[0-9][0-9]_*.ipynb",
    "notebooks/exercises/*.ipynb",
    "notebooks/exercises/*.md",
]
exclude_patterns = [".git", ".venv", ".venv-mace", "build", "minimace", "tests", "scripts", "configs",
                    "**/.ipynb_checkpoints", "**/__pycache__"]
html_extra_path = ["extra"]  # index.html at the site root: a redirect to book/index.html

# MyST: $...$ and $$...$$ maths, \begin{align}, ::: fences; anchors for "#section" links between pages.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# Notebooks: outputs come from the jupyter-cache filled by book/build.py (quick mode); a notebook missing from
# the cache is executed here (same settings), and a failure stops the build.
nb_execution_mode = "cache"
nb_execution_cache_path = str(ROOT / "build" / "book" / "jupyter_cache")
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_excludepatterns = []  # filled by learning_path from build/book/execution.json (e.g. no .venv-mace)
nb_ipywidgets_js = {}  # widgets are frozen to their output by build.py; their JS would come from a CDN
nb_merge_streams = True

html_theme = "sphinx_book_theme"
html_title = "minimace — MACE from scratch"
html_static_path = []
html_last_updated_fmt = None
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": "main",
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]
