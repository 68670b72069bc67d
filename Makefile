# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q -c constraints-cpu.txt

.PHONY: demo demo-prague test test-all test-slow lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.dev: $(BIN)/python pyproject.toml constraints-cpu.txt
	$(PIP) -e '.[dev,train,catalog,ray,datasets,gis,prague,helsinki,notebooks]'
	touch $@

# The fast loop (~3-4 min on 2 cores): every test not marked slow, on 2 pytest-xdist workers (a module's
# tests stay on one worker, so its fixtures are built once). `make test-all` adds the slow ones
# (training, DDP, kill -9 resume, the demo recipe): run it before a merge.
test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -m "not slow" -n 2 --dist loadscope

test-slow: $(VENV)/.dev
	$(BIN)/pytest -q -m slow

test-all: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: $(VENV)/.dev
	$(BIN)/python runs/demo.py catalogs/demo

# The demo over real footprints (Prague-Bubenec, momepy's bubenec.gpkg): catalog, training, evaluation.
demo-prague: $(VENV)/.dev
	$(BIN)/python runs/demo_prague.py catalogs/prague --fit

bench: $(VENV)/.dev
	$(BIN)/python bench/crop.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
