# The two set-up commands of the README. Both work on a fresh machine with only
# python3 and make: they create .venv when it is missing and (re)install whenever the
# lock changes. Every install comes from requirements/*.txt, exported from uv.lock with
# a hash for every file, so a fresh clone installs what CI tested whatever the index
# publishes later. pip installs (not `uv sync`): it orders the installs by dependency,
# which the two packages that both ship frequenz/client/weather/__init__.py need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DURATION ?= 60
PIP := $(BIN)/python -m pip install --quiet --require-hashes
# The project itself, on top of the locked set: no dependency resolved from the index,
# no build backend fetched unlocked.
PIP_PROJECT := $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
UV_EXPORT := $(BIN)/uv export --quiet --format requirements-txt --no-emit-project --frozen
UV_COMPILE_BUILD := $(BIN)/uv pip compile --quiet --generate-hashes --universal \
	--python-version 3.11 requirements/build.in

.PHONY: demo test lint typecheck units unit bench clean lock upgrade export lock-check browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-build: requirements/build.txt | $(BIN)/python
	$(PIP) -r requirements/build.txt
	touch $@

$(VENV)/.installed: requirements/run.txt pyproject.toml $(VENV)/.installed-build
	$(PIP) -r requirements/run.txt
	$(PIP_PROJECT)
	touch $@

$(VENV)/.installed-dev: requirements/dev.txt pyproject.toml $(VENV)/.installed-build
	$(PIP) -r requirements/dev.txt
	$(PIP_PROJECT)
	touch $@ $(VENV)/.installed

## lock: re-resolve uv.lock after a change to pyproject.toml (keeps what still fits),
## then export requirements/*.txt. Commit all of them with the pyproject.toml change.
lock: $(VENV)/.installed-dev
	$(BIN)/uv lock
	$(MAKE) --no-print-directory export

## upgrade: every dependency to the newest release pyproject.toml allows, then export.
upgrade: $(VENV)/.installed-dev
	$(BIN)/uv lock --upgrade
	$(UV_COMPILE_BUILD) --upgrade -o requirements/build.txt
	$(MAKE) --no-print-directory export

export:
	$(UV_EXPORT) --no-header -o requirements/run.txt
	$(UV_EXPORT) --no-header --extra dev -o requirements/dev.txt
	$(UV_COMPILE_BUILD) --no-header -o requirements/build.txt

## lock-check: fails when pyproject.toml changed without `make lock`, or when an export
## no longer matches uv.lock (CI runs it first).
lock-check: $(VENV)/.installed-dev
	$(BIN)/uv lock --locked
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(UV_EXPORT) --no-header -o $$tmp/run.txt && \
	$(UV_EXPORT) --no-header --extra dev -o $$tmp/dev.txt && \
	cp requirements/build.txt $$tmp/build.txt && \
	$(UV_COMPILE_BUILD) --no-header -o $$tmp/build.txt && \
	for f in run dev build; do \
	  diff -u requirements/$$f.txt $$tmp/$$f.txt > /dev/null || \
	  { echo "requirements/$$f.txt does not match the lock: run make lock and commit"; exit 1; }; \
	done

## demo: the simulated site driven by a built-in schedule for about a minute, then a summary.
demo: $(VENV)/.installed
	$(BIN)/edge-controller demo --duration $(DURATION)

## test: ruff, mypy --strict, the systemd unit check and the whole pytest suite.
test: lint typecheck units unit

# lint-imports: the import rules of pyproject.toml's [tool.importlinter] (layers,
# servers apart, use cases independent, pure cores without I/O, no package cycle).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports --no-cache

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

## units: systemd-analyze verify + security (exposure <= 2.0) on deploy/systemd/*.service.
units: $(VENV)/.installed
	.ci/check-units

# Two workers: most tests wait on servers ticking in real time, so two share two cores
# well. The 20 slowest tests are printed above pytest's summary: where the time goes.
# Property tests at the ci profile's size (tests/properties.py): derandomized, sized to
# stay far below the timeout on a loaded machine. `make unit HYPOTHESIS_PROFILE=nightly`
# searches at full size.
PYTEST_WORKERS ?= 2
HYPOTHESIS_PROFILE ?= ci
unit: $(VENV)/.installed-dev browser
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/pytest -n $(PYTEST_WORKERS) --durations=20

## browser: Debian's headless Chromium and its chromedriver for the browser tests,
## installed when missing (CI runs as root on a fresh machine; no browser download
## from anywhere but the distribution). Without root and without them, the browser
## tests are skipped with the reason.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    echo "installing chromium and chromium-driver (apt-get)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	      > /dev/null || { apt-get update -qq > /dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	      > /dev/null; }; \
	  else \
	    echo "chromium/chromedriver missing and not root: browser tests will be skipped"; \
	  fi; \
	fi

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/sim_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
