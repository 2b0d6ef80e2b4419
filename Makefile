# Quick start: `make demo` and `make test` (both set up .venv first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup editor-tools vsix grammar-snapshots demo test lint regen check mutation figures clean

setup: $(STAMP) editor-tools

# Neovim, for the real-editor test of the language server (tests/test_lsp_neovim.py): a Debian
# package, installed when missing (as root, or with sudo). The VS Code extension's npm packages
# (grammar tests, vsce, the LSP client), from its lockfile.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VSCODE := editors/vscode
editor-tools: $(VSCODE)/node_modules/.installed
	@command -v nvim >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq neovim >/dev/null; } \
		|| echo "warning: could not install neovim: tests/test_lsp_neovim.py will be skipped"

$(VSCODE)/node_modules/.installed: $(VSCODE)/package-lock.json
	cd $(VSCODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The VS Code extension as a .vsix (editors/vscode/, docs/editors.md).
vsix: editor-tools
	mkdir -p build
	cd $(VSCODE) && npx vsce package --allow-missing-repository -o ../../build/archdsl.vsix

# Rewrite the TextMate grammar's snapshots of every spec (editors/vscode/test/snapshots/).
grammar-snapshots: editor-tools
	rm -rf build/grammar-snapshots && mkdir -p build/grammar-snapshots && cp specs/*.arch build/grammar-snapshots/
	cd $(VSCODE) && npx vscode-tmgrammar-snap --updateSnapshot '../../build/grammar-snapshots/*.arch'
	rm -f $(VSCODE)/test/snapshots/*.snap && cp build/grammar-snapshots/*.snap $(VSCODE)/test/snapshots/

# torch==2.13.0 first: the CPU build from local disk, before anything can pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

demo: setup
	mkdir -p build
	$(BIN)/archdsl compile specs/mnv4_conv_s.arch --backend torch -o build/mnv4_conv_s.py
	@echo "wrote build/mnv4_conv_s.py"
	$(BIN)/archdsl cost specs/mnv4_conv_s.arch

test: setup
	$(BIN)/ruff check archdsl tests benchmarks tools
	$(BIN)/ruff check --select F generated  # generated code: no undefined or unused names
	$(BIN)/ruff format --check archdsl tests benchmarks tools generated
	$(BIN)/mypy
	$(BIN)/archdsl check
	$(BIN)/python -m pytest -q -n 2 --durations=15

lint: setup
	$(BIN)/ruff check archdsl tests benchmarks tools
	$(BIN)/ruff check --select F generated
	$(BIN)/ruff format --check archdsl tests benchmarks tools generated
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

# Mutation testing, on demand (not in `make test` or CI): mutmut over cost, the passes, the block
# kinds and the backends, with the tests and settings in pyproject.toml's [tool.mutmut]; a fresh
# run each time (mutants/ removed first). docs/mutation.md has the figures and every survivor.
# The tests run inside mutants/, so ARCHDSL_FIXTURES points them at the reference fixtures; one
# thread per test process (OMP_NUM_THREADS), as the worker is one.
# MUTMUT_ARGS narrows it to mutant names, e.g. MUTMUT_ARGS='"archdsl.analysis.cost.*"'.
MUTMUT_CHILDREN ?= 1
MUTMUT_ARGS ?=
mutation: setup
	$(BIN)/pip install --quiet -e ".[mutation]"
	rm -rf mutants
	ARCHDSL_FIXTURES=$${ARCHDSL_FIXTURES:-$(CURDIR)/../shared/reference/fixtures} OMP_NUM_THREADS=1 \
		$(BIN)/mutmut run --max-children $(MUTMUT_CHILDREN) $(MUTMUT_ARGS)
	$(BIN)/python tools/mutation_summary.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache mutants
