# gan_runner: `make help` lists the targets. Everything runs from ./.venv, created on demand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
MNIST  ?= $(abspath ../shared/datasets/mnist)
PORT   ?= 5000
HOST   ?= 127.0.0.1
ARGS   ?=
# make test runs the suite in JOBS pytest-xdist workers (tests sharing a costly fixture stay on one
# worker). 2 by default: most of a test's time is single-threaded (the imports of TensorFlow and
# MLflow in its subprocesses), so a second worker uses the second core. JOBS=1: one process.
JOBS   ?= 2

.DEFAULT_GOAL := help
.PHONY: help install run lint test bench crash ui docs-images clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install gan_runner with its dev tools (idempotent)

run: $(STAMP) ## train the default experiment (the seed's 1-D GAN); extra overrides: make run ARGS="seed=3"
	$(PY) -m gan_runner $(ARGS)

lint: $(STAMP) ## ruff: lint rules and formatting (config in pyproject.toml); no files are changed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP) lint ## run the test suite (after make lint; first installs Chromium and Fashion-MNIST with apt-get when root and missing)
	@.ci/test-deps
	GAN_RUNNER_MNIST=$(MNIST) $(PY) -m pytest -q --durations=20 $(if $(filter-out 1,$(JOBS)),-n $(JOBS) --dist loadgroup) $(ARGS)

bench: $(STAMP) ## measure speed and quality; prints the figures the README quotes
	GAN_RUNNER_MNIST=$(MNIST) $(PY) -m gan_runner.bench $(ARGS)

crash: $(STAMP) ## kill -9 runs of both models at hundreds of seeded points, resume each, compare with uninterrupted runs; ARGS="--runs 5 --kills 3 --seed 1"
	GAN_RUNNER_MNIST=$(MNIST) $(PY) tests/crash_harness.py $(if $(ARGS),$(ARGS),--runs 40 --kills 4)

ui: $(STAMP) ## MLflow UI on http://HOST:PORT (default 127.0.0.1:5000) over the store the runs write to; Ctrl-C stops it
	@$(PY) -m gan_runner.ui --host $(HOST) --port $(PORT)

docs-images: $(STAMP) ## regenerate the README's pictures in docs/ (short real runs + UI screenshot)
	GAN_RUNNER_MNIST=$(MNIST) $(PY) tools/docs_images.py --mnist $(MNIST) $(ARGS)

clean: ## remove caches and Hydra's outputs/ multirun/ (keeps the runs: mlflow.db, mlartifacts/, checkpoints/; and .venv)
	rm -rf outputs multirun .pytest_cache .bench
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
