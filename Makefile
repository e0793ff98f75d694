# Twin — two commands on a fresh Debian machine:
#   make run    set up, load the Quy Nhơn sample city into the embedded store, serve on http://127.0.0.1:8000
#   make test   set up, then run the whole test suite (it starts its own PostgreSQL + PostGIS)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
export TWIN_DATA_DIR ?= var
APT_PACKAGES := libsqlite3-mod-spatialite postgresql-15-postgis-3 gdal-bin python3-venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test setup system-packages samples lint bench clean

run: setup
	@test -f "$(TWIN_DATA_DIR)/.samples-loaded" || { $(VENV)/bin/twin samples && touch "$(TWIN_DATA_DIR)/.samples-loaded"; }
	$(VENV)/bin/twin serve

test: setup
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	TWIN_REQUIRE_POSTGIS=1 $(VENV)/bin/python -m pytest

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
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	$(VENV)/bin/python bench/store_bench.py

clean:
	rm -rf $(VENV) "$(TWIN_DATA_DIR)" .pytest_cache .mypy_cache .ruff_cache
