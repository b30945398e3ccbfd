# Two commands set everything up on a fresh machine (README "Quick start"):
#   make demo   -- creates .venv, installs, runs the flagship experiment on default settings
#   make test   -- creates .venv, installs, runs the test suite (the default, fast tier)
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= results/dendritic-prediction

.PHONY: install demo test test-slow test-all lint bench clean

$(BIN)/neurosim: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/neurosim

install: $(BIN)/neurosim

demo: install
	$(BIN)/neurosim run dendritic-prediction --out $(OUT)

test: install
	$(BIN)/pytest -q

test-slow: install
	$(BIN)/pytest -q -m slow

test-all: install
	$(BIN)/pytest -q -m ''

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/bench_dendritic_prediction.py

clean:
	rm -rf $(VENV) results
