# The two set-up commands of the README. Both work on a fresh machine with only
# python3 and make: they create .venv when it is missing and (re)install the project
# whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DURATION ?= 60

.PHONY: demo test lint typecheck units unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

## demo: the simulated site driven by a built-in schedule for about a minute, then a summary.
demo: $(VENV)/.installed
	$(BIN)/edge-controller demo --duration $(DURATION)

## test: ruff, mypy --strict, the systemd unit check and the whole pytest suite.
test: lint typecheck units unit

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

## units: systemd-analyze verify + security (exposure <= 2.0) on deploy/systemd/*.service.
units: $(VENV)/.installed
	.ci/check-units

unit: $(VENV)/.installed-dev
	$(BIN)/pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/sim_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
