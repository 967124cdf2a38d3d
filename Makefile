# minimace — one command to set up and run the main job, one to run every test.
#   make demo   : create .venv (CPU torch), install minimace, run `minimace demo` on the bundled data
#   make test   : create both environments if needed, then run every test (python -m pytest -n 2 ...)
#   make book   : the tutorial website in build/book/html (lessons, exercises, docs; notebooks executed, cached)
PY ?= python3
VENV := .venv
MACE_VENV := .venv-mace

.PHONY: demo test book setup setup-mace setup-book clean

$(VENV)/.stamp: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# CPU build of torch first: an unpinned torch could pull a multi-GB CUDA build.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

# Second environment for comparisons with the official implementation: mace-torch 0.3.16 pins e3nn 0.4.4.
# Its packages install independently of .venv (`make -j2 setup-book setup-mace` builds both at once); the
# editable install of the checkout waits for .venv's, as both write minimace.egg-info into the checkout.
$(MACE_VENV)/.stamp-deps:
	$(PY) -m venv $(MACE_VENV)
	$(MACE_VENV)/bin/pip install -q --upgrade pip
	$(MACE_VENV)/bin/pip install -q torch==2.13.0
	$(MACE_VENV)/bin/pip install -q mace-torch==0.3.16 pytest nbval ipykernel nbformat nbclient
	$(MACE_VENV)/bin/pip install -q sympy ase vesin matplotlib ipywidgets tqdm pyyaml hypothesis
	touch $@

$(MACE_VENV)/.stamp: $(MACE_VENV)/.stamp-deps pyproject.toml | $(VENV)/.stamp
	$(MACE_VENV)/bin/pip install -q --no-deps -e .
	touch $@

# The website's packages (Sphinx, myst-nb, the book theme, jupyter-cache, MathJax, Playwright): the `book` extra.
$(VENV)/.stamp-book: $(VENV)/.stamp pyproject.toml
	$(VENV)/bin/pip install -q -e ".[dev,book]"
	touch $@

setup: $(VENV)/.stamp
setup-mace: $(MACE_VENV)/.stamp
setup-book: $(VENV)/.stamp-book

demo: $(VENV)/.stamp
	$(VENV)/bin/minimace demo

# Two workers (one per core; notebooks stay whole with --dist loadfile), one thread each.
# PYTEST_ARGS selects a part (.ci/run runs all of it in two parts: the browser test after the book).
test: $(VENV)/.stamp $(MACE_VENV)/.stamp
	OMP_NUM_THREADS=1 $(VENV)/bin/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# Lessons and exercises run in quick mode (notebook 08 in .venv-mace); unchanged notebooks are not run again, and
# a notebook that nbval just executed in the tests is taken from build/book/nbval/ (book/nbval_record.py).
book: $(VENV)/.stamp-book $(MACE_VENV)/.stamp
	$(VENV)/bin/python book/build.py

clean:
	rm -rf $(VENV) $(MACE_VENV) build/book
