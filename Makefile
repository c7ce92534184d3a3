PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export PYTHONHASHSEED := 0

.PHONY: setup data run test lint bench leaderboard verify wheel clean

setup: $(VENV)/.installed data

# Fashion-MNIST's original IDX files from Debian's package (30 MB, no download at run time) where this
# machine lets us install it; elsewhere one line says how, and everything but its tracks still runs.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
data:
	@test -f $(FASHION_MNIST) || .ci/apt-install dataset-fashion-mnist || \
	  echo "note: Fashion-MNIST is not installed: run 'sudo apt-get install dataset-fashion-mnist', or point --data-root / \$$GRADBENCH_DATA at its four IDX files; its tracks fail until then" >&2

# torch first, from this machine's disk, then the project against the same pins.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

run: setup
	$(BIN)/bench run registry/suites/default.toml
	$(BIN)/bench leaderboard

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check bench tests benchmarks

# Speed comparisons (not tests): GradBench vs Captum + Quantus on the same inputs.
bench: setup
	$(BIN)/python benchmarks/harness_vs_quantus.py --model all
	$(BIN)/python benchmarks/methods_vs_captum.py
	$(BIN)/python benchmarks/metrics_vs_quantus.py

leaderboard: setup
	$(BIN)/bench leaderboard

# Retrain and rerun a sample of the default suite's jobs from an empty cache; compare with results/.
verify: setup
	$(BIN)/bench verify default --sample 6

# A wheel with the registry inside (bench/_registry), for installs without this checkout.
wheel: setup
	$(BIN)/pip wheel --no-deps --no-build-isolation . -w dist

clean:
	rm -rf $(VENV) build dist *.egg-info
