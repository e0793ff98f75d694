# Twin — two commands on a fresh Debian machine:
#   make run    set up, load the Quy Nhơn sample city into the embedded store, serve on http://127.0.0.1:8000
#   make test   set up, then run the whole test suite (it starts its own PostgreSQL + PostGIS)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
export TWIN_DATA_DIR ?= var
APT_PACKAGES := libsqlite3-mod-spatialite postgresql-15-postgis-3 gdal-bin python3-venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test setup system-packages client samples lint bench bench-client wheel clean

run: setup client
	@test -f "$(TWIN_DATA_DIR)/.samples-loaded" || { $(VENV)/bin/twin samples && touch "$(TWIN_DATA_DIR)/.samples-loaded"; }
	$(VENV)/bin/twin serve

test: setup client
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium || echo "chromium could not be installed: browser tests will be skipped"; }
	TWIN_REQUIRE_POSTGIS=1 $(VENV)/bin/python -m pytest

# The map client (frontend/ → frontend/dist), served by `twin serve` at / and /wall. Needs Node 20+ and npm.
client:
	@command -v npm >/dev/null || { echo "installing Node.js and npm"; $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' \
		|| { echo "the map client needs Node.js 20.19 or newer (Vite 8); found $$(node --version)"; exit 1; }
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e .
	touch $@

samples: setup
	$(VENV)/bin/twin samples && touch "$(TWIN_DATA_DIR)/.samples-loaded"

lint: setup
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	$(VENV)/bin/ruff check . && $(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk; }
	$(VENV)/bin/python bench/store_bench.py
	$(VENV)/bin/python bench/items_bench.py
	$(VENV)/bin/python bench/tiles_bench.py
	$(VENV)/bin/python bench/point_tiles_bench.py
	$(VENV)/bin/python bench/polygon_import_bench.py
	$(VENV)/bin/python bench/catalog_bench.py

bench-client: setup client
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	$(VENV)/bin/python bench/first_render.py

# dist/twin-*.whl: the package with the built map client and the sample city's inputs in it.
wheel: setup client
	$(VENV)/bin/pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) "$(TWIN_DATA_DIR)" .pytest_cache .mypy_cache .ruff_cache frontend/node_modules frontend/dist
