# flightdelay: the menu. `make` lists the targets; each `## comment` is its help line.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
# A poetry on PATH is used when there is one; otherwise a private one is installed in .poetry/.
POETRY ?= $(shell command -v poetry 2>/dev/null || echo $(CURDIR)/.poetry/bin/poetry)
export POETRY_VIRTUALENVS_IN_PROJECT := true
export POETRY_NO_INTERACTION := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Byte-compile once at install and keep .pyc files: a cold CLI start is seconds faster.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install run test test-fast lint type format bench serve demo ui shell stack-up \
        stack-down stack-status doctor system-deps clean k8s-check prometheus-check bench-scale score

help: ## Show this menu
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(CURDIR)/.poetry/bin/poetry:
	$(PYTHON) -m venv .poetry
	.poetry/bin/pip install -q -U pip
	.poetry/bin/pip install -q "poetry>=2.1,<3"

$(VENV)/.installed: pyproject.toml poetry.lock | $(POETRY)
	$(POETRY) install --compile --with dev --all-extras
	@# mlflow, mlflow-skinny and mlflow-tracing ship the same mlflow/ files and poetry installs
	@# them in parallel: a .pyc compiled from one package's copy can outlive the file another
	@# wrote over it (`import mlflow` then fails on a fresh install). Compile the package again.
	$(VENV)/bin/python -m compileall -q -f -j0 $$($(VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/mlflow
	@touch $@

install: $(VENV)/.installed ## Create the environment from poetry.lock (only when missing or stale)

run: install ## The main job: `dvc repro` on the embedded default (SQLite + local MLflow)
	dvc repro
	dvc metrics show

system-deps: ## Install the Debian packages the tests use (nginx, chromium, ...) when missing
	@bash scripts/system-deps.sh

test: lint system-deps ## The whole suite: lint first, then unit, integration, e2e, data, stack
	K8S_CHECK_REQUIRED=1 pytest -p no:cacheprovider tests

test-fast: install ## Unit and integration tests only (no full repro, no stack)
	pytest -m "not slow and not stack" tests

lint: install ## ruff (lint incl. C901 <= 10, format check), mypy --strict, the CI workflow
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks
	mypy
	actionlint .github/workflows/ci.yml

type: install ## mypy only
	mypy

format: install ## Apply ruff's formatting and safe fixes
	ruff format src tests benchmarks
	ruff check --fix src tests benchmarks

bench: install system-deps ## Benchmarks -> reports/bench/*.json (load, repro, serving, stack)
	python benchmarks/bench_load.py
	python benchmarks/bench_repro.py
	python benchmarks/bench_serving.py
	python benchmarks/bench_stack.py

score: install ## Score the feature table with models:/<name>@serving (params.yaml score.engine) -> data/predictions/
	dvc repro features
	eval "$$(python -c 'import yaml; print(yaml.safe_load(open("dvc.yaml"))["stages"]["score"]["cmd"])')"

bench-scale: install ## Scale benchmark (synthetic x1/x4/x16 flights) -> reports/bench/scale.{json,png}
	python benchmarks/bench_scale.py

serve: install ## Serve models:/<name>@serving (the champion unless pinned) from the embedded registry
	flightdelay serve

ui: install ## The MLflow UI on the embedded store: http://127.0.0.1:5000 (open "Training runs")
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

shell: install ## A shell with the project's environment (flightdelay, dvc, mlflow on PATH)
	@echo "entering .venv (exit to leave)"; exec bash --rcfile <(echo '. ~/.bashrc 2>/dev/null; . .venv/bin/activate')

demo: install ## Call every endpoint of a running service; writes reports/requests.jsonl
	flightdelay demo --host http://$${API_HOST:-127.0.0.1}:$${API_PORT:-8000}

stack-up: install ## Start the native stack (Postgres, S3, nginx, MLflow, pgAdmin, 2 API replicas)
	flightdelay stack up

stack-down: install ## Stop the native stack (data is kept in .stack/)
	flightdelay stack down

stack-status: install ## Show the state of each stack service
	flightdelay stack status

doctor: install ## Check every stack endpoint, credential, bucket and the DVC remote
	flightdelay stack doctor

k8s-check: install ## Kubernetes manifests, statically: kustomize render, schemas (1.37), policies
	bash scripts/k8s-check.sh

prometheus-check: install ## promtool: both Prometheus configs, the rules, their unit tests
	@bash scripts/prometheus-check.sh

clean: ## Remove caches (keeps data, the MLflow store and the stack's state)
	rm -rf .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
