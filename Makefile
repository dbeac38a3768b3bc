# tinyprune: `make demo` and `make test` install what they need (apt packages when missing, a
# .venv in the repo) and are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tinyprune-installed
SYSTAMP := $(VENV)/.system-checked

.PHONY: setup system demo test test-fast bench lint clean

setup: $(STAMP) system

system:
	@bash scripts/setup_system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/tinyprune build --board nucleo_f746 \
	    --model examples/digits/digits_cnn.keras --data examples/digits/digits.npz \
	    --prune-channels 0.5 --out build/demo

test: setup
	$(BIN)/python -m pytest -q -ra

test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not e2e"

# MLPerf Tiny models (~3 min), per-kernel shapes (~2 min), pruning criteria on digits (~15 min),
# emulator speed with and without the fault checks (~10 min), layer types against CMSIS-NN and
# RAM against TFLite Micro on the official models (~6 min).
bench: setup
	$(BIN)/python bench/run.py
	$(BIN)/python bench/kernels.py
	$(BIN)/python bench/prune_criteria.py
	$(BIN)/python bench/cycle_models.py
	$(BIN)/python bench/emulator.py
	$(BIN)/python bench/layer_types.py

lint: setup
	$(BIN)/ruff check tinyprune tests bench
	$(BIN)/mypy tinyprune

clean:
	rm -rf build dist *.egg-info
