# Two commands from a fresh clone (Python 3.11): `make run` serves, `make test` tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup sandboxes lint typecheck bench bench-code clean

# torch before trl (the trl extra: examples/train_grpo.py and its test), pinned: left to pip through trl's
# requirement, torch comes as the multi-GB CUDA build.
$(BIN)/rlvr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,trl]'
	touch $(BIN)/rlvr

setup: $(BIN)/rlvr

run: setup
	$(BIN)/rlvr serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/pytest

# Docker engine, bubblewrap and the sandbox runtime image (root; Debian/Ubuntu). CI runs this first.
sandboxes:
	bash .ci/provision.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench.bench_math
	$(BIN)/python -m bench.bench_language
	$(BIN)/python -m bench.bench_format

# Needs a sandbox backend (`make sandboxes`).
bench-code: setup
	$(BIN)/python -m bench.bench_code_service
	$(BIN)/python -m bench.bench_harness
	$(BIN)/python bench/bench_sandbox.py
	$(BIN)/python -m bench.bench_trainer
	$(BIN)/python -m bench.bench_compose
	$(BIN)/python -m bench.bench_soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
