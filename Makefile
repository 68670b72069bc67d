# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q -c constraints-cpu.txt

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.dev: $(BIN)/python pyproject.toml constraints-cpu.txt
	$(PIP) -e '.[dev,train,catalog]'
	touch $@

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: $(VENV)/.dev
	$(BIN)/python runs/demo.py catalogs/demo

bench: $(VENV)/.dev
	$(BIN)/python bench/crop.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
