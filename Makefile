# Developer entry points. Every target works from a fresh clone with only python3 (>= 3.11) and
# make: the first one that needs the virtualenv creates it from the locked dependencies.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GEN := src/payments_service/gen

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install lock proto proto-deps proto-check docs lint lint-imports format format-check typecheck test check e2e run clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {name[++n] = $$1; text[n] = $$2; \
		if (length($$1) > width) width = length($$1)} \
		END {for (i = 1; i <= n; i++) printf "  \033[36m%-" width "s\033[0m  %s\n", name[i], text[i]}' \
		$(MAKEFILE_LIST)

$(STAMP): requirements/dev.lock pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP) ## Create .venv with the locked dependencies and the package (editable)

lock: $(STAMP) ## Re-pin requirements/*.lock from the ranges in pyproject.toml
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --pre --no-emit-index-url --no-emit-find-links --strip-extras --generate-hashes --allow-unsafe -o requirements/runtime.lock pyproject.toml
	$(BIN)/pip-compile --quiet --no-emit-index-url --no-emit-find-links --strip-extras --generate-hashes --allow-unsafe --extra dev -c requirements/runtime.lock -o requirements/dev.lock pyproject.toml

proto: $(STAMP) ## Regenerate src/payments_service/gen from proto/
	$(BIN)/python scripts/gen_proto.py

proto-deps: $(STAMP) ## Copy google/api's annotations from the installed googleapis-common-protos for buf (build/)
	dir=build/googleapis/google/api && mkdir -p $$dir && \
	api=$$($(BIN)/python -c 'import google.api.annotations_pb2 as a, os; print(os.path.dirname(a.__file__))') && \
	cp $$api/annotations.proto $$api/http.proto $$dir/

proto-check: $(STAMP) ## Fail if the committed generated code differs from what `make proto` makes
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/python scripts/gen_proto.py "$$tmp/gen" && \
	diff -r -x __pycache__ "$$tmp/gen" $(GEN) && echo "generated code is up to date"

docs: $(STAMP) ## Regenerate the reference tables in README, ARCHITECTURE.md and docs/ from the code
	$(BIN)/python -m scripts.render_docs

lint: $(STAMP) ## ruff check
	$(BIN)/ruff check .

lint-imports: $(STAMP) ## import-linter: the layer contracts in pyproject.toml
	$(BIN)/lint-imports --no-cache

format: $(STAMP) ## ruff format (rewrites files) and safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP) ## mypy --strict on src/, tests/, benchmarks/, scripts/, fuzzing/ and examples/
	$(BIN)/mypy
	$(BIN)/mypy tests
	$(BIN)/mypy benchmarks scripts fuzzing examples

test: $(STAMP) ## pytest with the coverage gate (>= 90 % line + branch, see pyproject.toml)
	$(BIN)/pytest --cov --cov-report=term-missing --cov-fail-under=90

format-check: $(STAMP) ## ruff format --check (changes nothing)
	$(BIN)/ruff format --check .

check: lint lint-imports format-check proto-check typecheck test ## Lint, layer contracts, format, generated code, types, tests (docs test included); CI also runs e2e

e2e: $(STAMP) ## Real processes and tools: grpcurl, Prometheus, OTLP export (installs Debian's prometheus with apt-get if missing)
	@command -v prometheus >/dev/null || { \
	  echo "make e2e: prometheus is not on PATH: installing Debian's prometheus package system-wide with apt-get$(if $(SUDO), (through sudo))" >&2; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }
	$(BIN)/pytest -m e2e -p no:cacheprovider

run: $(STAMP) ## Run the server (PAYMENTS_* variables configure it; see README)
	$(BIN)/payments-server

clean: ## Remove the virtualenv, caches and coverage data
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Deployment (Docker, compose, tool checks) and benchmark targets live in their own fragments.
-include mk/*.mk
