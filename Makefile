# wmkit on a fresh machine with Python 3.10+ and pip: the quick start is make lab / make test.
#   make lab    set up .venv, then open the notebooks in JupyterLab
#   make test   set up .venv, then run the unit tests, every notebook and the exercise solutions
#   make test-ui  only the browser tests (tests/ui: JupyterLab in headless chromium)
# Knobs:
#   VENV=.venv            where the virtual environment lives
#   PYTHON=python3        the interpreter that creates it
#   TORCH=torch           the torch requirement installed first, e.g. TORCH=torch==2.13.0 or
#                         TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
#   PYTEST_ARGS=          passed on to pytest, e.g. PYTEST_ARGS="-k packaging -x"
#   WORKERS=auto          pytest-xdist workers for `make test` (one per core; 0: one process)

VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch
PYTEST_ARGS ?=
WORKERS ?= auto

BIN := $(VENV)/bin
# The stamp holds the TORCH spec the venv was installed with.
STAMP := $(VENV)/.wmkit-installed

# Recipes read TORCH from the environment: the shell splits "torch --index-url URL" into words
# but never parses the `>` of "torch>=2.3" as a redirection.
export TORCH

.PHONY: help setup lab test lint strip clean distclean FORCE

help:
	@sed -n 's/^#   //p' Makefile

setup: $(STAMP)

# Re-install when pyproject.toml is newer than the stamp, or TORCH differs from the recorded spec.
ifneq ($(strip $(shell cat $(STAMP) 2>/dev/null)),$(strip $(TORCH)))
$(STAMP): FORCE
endif

# torch first, so that `torch>=2.2` in pyproject.toml is already met by the build you chose.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $$TORCH
	$(BIN)/python -m pip install -e ".[dev,online,sweep]"
	printf '%s\n' "$$TORCH" > $@

# Jupyter refuses to run as root unless told: containers often run as root.
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=. --ServerApp.default_url=/lab/tree/notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# SDL_VIDEODRIVER=dummy: pygame draws off-screen, with no display warnings in cell outputs.
# No MPLBACKEND=Agg: notebook kernels inherit the environment and would lose the inline backend.
# pytest exits 5 when it collected nothing; make fails on it like on any other non-zero code.
test: $(STAMP)
	SDL_VIDEODRIVER=dummy $(BIN)/pytest -n $(WORKERS) --dist loadfile $(PYTEST_ARGS) || { rc=$$?; \
	  [ $$rc -ne 5 ] || echo "make test: pytest collected no tests, which counts as a failure" >&2; \
	  exit $$rc; }

# The browser tests alone; `make test` runs them too. They need Debian's chromium (as root:
# apt-get install chromium) and playwright in the venv (installed here); without chromium they
# skip with the reason, unless WMKIT_UI_REQUIRED=1 (CI), which turns the skip into a failure.
.PHONY: test-ui
test-ui: $(STAMP)
	$(BIN)/python -c 'import playwright' 2>/dev/null || $(BIN)/python -m pip install playwright
	SDL_VIDEODRIVER=dummy $(BIN)/pytest -m ui tests/ui $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

strip: $(STAMP)
	$(BIN)/python tools/strip_notebooks.py notebooks exercises

# clean keeps the venv (a reinstall takes minutes); distclean removes it too.
clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -path './.*' -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) \
	  -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
