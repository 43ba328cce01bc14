# `make run` starts a dev server; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/coffer server -dev

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

lint: $(VENV)/.installed-test
	$(PY) -m ruff check src tests

clean:
	rm -rf $(VENV) .pytest_cache
