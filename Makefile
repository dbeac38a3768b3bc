# tinyprune: `make demo` and `make test` install what they need (apt packages when missing, a
# .venv in the repo) and are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tinyprune-installed
SYSTAMP := $(VENV)/.system-checked

.PHONY: setup system demo demo-kws test test-full test-fast bench fuzz lint clean

setup: $(STAMP) system

system:
	@bash scripts/setup_system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The digits CNN four ways, then the before/after table (build/demo-compare.md): as given,
# structurally pruned (50% channels), 75% 1x4 block-sparse (same shapes, three quarters of the
# weights gone), and pruned (25% channels) + 75% 1x4 block-sparse (30 fine-tune epochs: on this
# small CNN 50% channels + 75% blocks leave too few weights to recover).
DEMO = $(BIN)/tinyprune build --board nucleo_f746 \
	    --model examples/digits/digits_cnn.keras --data examples/digits/digits.npz
demo: setup
	$(DEMO) --out build/demo-dense --force
	$(DEMO) --prune-channels 0.5 --out build/demo --force
	$(DEMO) --sparsity 0.75 --block 1x4 --out build/demo-sparse --force
	$(DEMO) --prune-channels 0.25 --sparsity 0.75 --block 1x4 --finetune-epochs 30 \
	    --out build/demo-pruned-sparse --force
	$(BIN)/tinyprune report build/demo-dense build/demo build/demo-sparse build/demo-pruned-sparse \
	    --md build/demo-compare.md --force > /dev/null
	@grep -A4 '^| variant' build/demo-compare.md

# Keyword spotting on synthetic speech (examples/kws): espeak-ng data set (cached), DS-CNN
# trained once (reused while data and settings are unchanged), pruned 50%, firmware + report.
KWS := build/kws
demo-kws: setup
	$(BIN)/python examples/kws/make_data.py --out $(KWS)/kws.npz
	$(BIN)/python examples/kws/train.py --data $(KWS)/kws.npz --out $(KWS)/kws_dscnn.keras --reuse
	$(BIN)/tinyprune build --board nucleo_f746 \
	    --model $(KWS)/kws_dscnn.keras --data $(KWS)/kws.npz \
	    --prune-channels 0.5 --finetune-epochs 8 --out build/demo-kws

# The suite runs on every core (pytest-xdist), one test module per worker at a time so that
# module fixtures (trained models, built firmware) are made once; TEST_JOBS=1 runs it serially.
TEST_JOBS ?= auto
test: setup
	$(BIN)/python -m pytest -q -ra -n $(TEST_JOBS) --dist loadfile --durations=15

# make test plus the rows it leaves out for time: the pruned zoo in both Keras flavors and
# every keras.applications backbone dense and pruned (about 30 more minutes on 2 cores).
test-full: setup
	TINYPRUNE_TEST_FULL=1 $(BIN)/python -m pytest -q -ra -n $(TEST_JOBS) --dist loadfile

test-fast: setup
	$(BIN)/python -m pytest -q -ra -n $(TEST_JOBS) --dist loadfile -m "not e2e"

# MLPerf Tiny models (~3 min), per-kernel shapes (~2 min), pruning criteria on digits (~15 min),
# sparse kernels and activation sparsity (~15 min; the cost-model fit is bench/fit_sparse_cost.py),
# ResNet-8 and DS-CNN dense vs block-sparse end to end (~15 min; accuracy of the sparsity
# schedules is bench/sparsify_accuracy.py, hours), cycle models, emulator speed with and without
# the fault checks (~10 min), layer types against CMSIS-NN and RAM
# against TFLite Micro on the official models (~6 min), TCM placement on the official KWS and
# IC models (~6 min), the kernel choice under the M7 cost fit against the table fit (~25 min),
# MACs/cycle of the MLPerf twins unpruned and pruned to 50% (~6 min).
bench: setup
	$(BIN)/python bench/run.py
	$(BIN)/python bench/kernels.py
	$(BIN)/python bench/prune_criteria.py
	$(BIN)/python bench/sparse_kernels.py
	$(BIN)/python bench/sparse_models.py
	$(BIN)/python bench/cycle_models.py
	$(BIN)/python bench/emulator.py
	$(BIN)/python bench/layer_types.py
	$(BIN)/python bench/tcm.py
	$(BIN)/python bench/kernel_choice.py
	$(BIN)/python bench/pruned_efficiency.py

# Long fuzzing of the .tflite path: 100,000 mutants of the MLPerf Tiny models, hours on 2 cores
# (resumable: python bench/fuzz.py --resume); counts go to bench/results/fuzz.md.
fuzz: setup
	nice -n 10 $(BIN)/python bench/fuzz.py --mutants 100000

lint: setup
	$(BIN)/ruff check tinyprune tests bench
	$(BIN)/mypy tinyprune

clean:
	rm -rf build dist *.egg-info
