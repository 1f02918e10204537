# Everything runs from the project's own virtual environment, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_TEXT := The cat sat on the mat

.PHONY: demo test lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# A regular (not editable) install, redone on every run: the demo and the tests
# use attncli exactly as a user gets it, bundled vocabulary included.
install: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check ".[test]"

demo: install
	$(BIN)/attncli explain "$(DEMO_TEXT)"

test: install-test
	$(BIN)/pytest

lint: install-test
	$(BIN)/ruff check attncli tests sample_vocab
	$(BIN)/ruff format --check attncli tests sample_vocab

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
