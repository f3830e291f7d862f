# Quick start: `make demo` and `make test`. Both create/update the virtual environment in .venv/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint env services services-stop demo-sources train-demo chaos bench clean browser gpu-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

demo-sources:
	scripts/fetch_demo_sources.sh

demo: $(STAMP) demo-sources
	$(BIN)/python scripts/demo.py

services: $(STAMP)
	scripts/services.sh start

services-stop:
	scripts/services.sh stop

# Headless Chromium for the console tests (tests/console, marked `browser`), from Debian.
browser:
	test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: $(STAMP) services demo-sources browser
	. scripts/services.env && OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

chaos: $(STAMP) services
	. scripts/services.env && $(BIN)/python -m pytest -q -m chaos --run-chaos tests

faults: $(STAMP) services
	. scripts/services.env && $(BIN)/python -m pytest -q -m faults tests/reliability

# On a CUDA machine: GPU tests, sampler speed, fast-solver quality (scripts/gpu_checks.sh; results/gpu/).
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python scripts/gpu_checks.sh

train-demo: $(STAMP) demo-sources
	scripts/train_demo.sh

# The service's packages; generator/ and training/ (the model) are read by mypy for their types only.
LINTED := api worker filter classify store cli contracts

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy $(LINTED)

clean:
	rm -rf $(VENV) build *.egg-info
