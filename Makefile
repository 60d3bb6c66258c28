# Aftercare. `make run` runs the main job on a local broker; `make test` runs every test.
# Each target installs what it needs into .venv first. Prerequisites: Python >= 3.11, Java 17, Maven.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test unit integration lint format typecheck prometheus-tools broker-up broker-down topics clean bench chaos

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Aftercare needs Python 3.11 or newer; this is " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	@touch $@

run: install
	$(BIN)/aftercare run

test: install lint typecheck prometheus-tools
	$(BIN)/pytest

# promtool (alert rule tests) and prometheus (the scrape test) from Debian's package.
prometheus-tools:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's prometheus package (promtool, prometheus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else \
	    echo "make test needs promtool and prometheus: apt-get install prometheus (as root)"; exit 1; \
	  fi; }

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration

lint: install
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline tests bench

format: install
	$(BIN)/ruff format pipeline tests bench
	$(BIN)/ruff check --fix pipeline tests bench

typecheck: install
	$(BIN)/mypy

broker-up: install
	$(BIN)/aftercare broker start

broker-down: install
	$(BIN)/aftercare broker stop

topics: install
	$(BIN)/aftercare topics create

bench: install
	$(BIN)/python -m bench.run

# The fault suite (about 10 minutes): the pipeline on a three-node cluster of its own, killed and
# hurt on a schedule, then accounted for against a fault-free run; figures in bench/results/.
chaos: install
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
