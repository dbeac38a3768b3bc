# tinyprune: `make demo` and `make test` install what they need (apt packages when missing, a
# .venv in the repo) and are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tinyprune-installed
SYSTAMP := $(VENV)/.system-checked

.PHONY: setup system demo demo-kws test test-fast bench lint clean

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

# Keyword spotting on synthetic speech (examples/kws): espeak-ng data set (cached), DS-CNN
# trained once (reused while data and settings are unchanged), pruned 50%, firmware + report.
KWS := build/kws
demo-kws: setup
	$(BIN)/python examples/kws/make_data.py --out $(KWS)/kws.npz
	$(BIN)/python examples/kws/train.py --data $(KWS)/kws.npz --out $(KWS)/kws_dscnn.keras --reuse
	$(BIN)/tinyprune build --board nucleo_f746 \
	    --model $(KWS)/kws_dscnn.keras --data $(KWS)/kws.npz \
	    --prune-channels 0.5 --finetune-epochs 8 --out build/demo-kws

test: setup
	$(BIN)/python -m pytest -q -ra

test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not e2e"

# MLPerf Tiny models (~3 min), per-kernel shapes (~2 min), pruning criteria on digits (~15 min).
bench: setup
	$(BIN)/python bench/run.py
	$(BIN)/python bench/kernels.py
	$(BIN)/python bench/prune_criteria.py

lint: setup
	$(BIN)/ruff check tinyprune tests bench
	$(BIN)/mypy tinyprune

clean:
	rm -rf build dist *.egg-info
