# Quick start: `make demo` and `make test` (both set up .venv first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint regen check figures clean

setup: $(STAMP)

# torch==2.13.0 first: the CPU build from local disk, before anything can pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: setup
	mkdir -p build
	$(BIN)/archdsl compile specs/mnv4_conv_s.arch --backend torch -o build/mnv4_conv_s.py
	@echo "wrote build/mnv4_conv_s.py"
	$(BIN)/archdsl cost specs/mnv4_conv_s.arch

test: setup
	$(BIN)/ruff check archdsl tests benchmarks
	$(BIN)/ruff check --select F generated  # generated code: no undefined or unused names
	$(BIN)/ruff format --check archdsl tests benchmarks generated
	$(BIN)/mypy
	$(BIN)/archdsl check
	$(BIN)/python -m pytest -q -n 2 --durations=15

lint: setup
	$(BIN)/ruff check archdsl tests benchmarks
	$(BIN)/ruff check --select F generated
	$(BIN)/ruff format --check archdsl tests benchmarks generated
	$(BIN)/mypy

regen: setup
	$(BIN)/archdsl regen

check: setup
	$(BIN)/archdsl check

# The roofline figures in docs/ (docs/latency.md): MobileNetV4's figures 2 and 3 for our specs.
figures: setup
	$(BIN)/archdsl roofline specs/mnv1.arch specs/mnv2.arch specs/mnv3_large.arch specs/mnv4_conv_s.arch \
		specs/mnv4_conv_m.arch specs/mnv4_hybrid_m.arch --hardware pixel8-edgetpu --plot docs/roofline_sweep.svg
	$(BIN)/archdsl roofline specs/mnv4_conv_s.arch --plot docs/roofline_layers_mnv4_conv_s.svg

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache
