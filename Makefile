# minimllm: every target makes .venv itself when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export PATH := $(abspath $(BIN)):$(PATH)
CELL_TIMEOUT ?= 600

.PHONY: help demo assistant captioner gpu test lint unit nbtest export update export-check exercises exercises-check grade fuzz \
        checkpoints run-notebook lab site browser-test widget-screenshot env clean

help:
	@echo "make demo         environment check, data preview, then the main job: train chapter 07's assistant"
	@echo "make assistant    the main job alone: instruction-tune the assistant, one line per target"
	@echo "make captioner    chapter 05's job: align and tune the captioner, report caption accuracy"
	@echo "make gpu          chapter 08: a bigger assistant, NF4 LM + LoRA, on one CUDA GPU"
	@echo "make test         the whole suite in quick mode (lint, unit, export/exercise sync, notebooks)"
	@echo "make fuzz         the property-based tests with a large example budget (minutes)"
	@echo "make lab          JupyterLab on the course"
	@echo "make site         the course as a website in site/ (README + chapters with their outputs)"
	@echo "make browser-test chapter 07's chat widget asked a question in headless Chromium (minutes)"
	@echo "make widget-screenshot  the same clicks on the shipped assistant: docs/chat_widget.png"
	@echo "make export       write minimllm/ from the notebooks' #| export cells"
	@echo "make update       write blocks edited in minimllm/ back into their notebook cells"
	@echo "make exercises    write exercises/ from solutions/"
	@echo "make grade NB=exercises/00_setup_and_data.ipynb   grade a notebook"
	@echo "make checkpoints  train the reference checkpoints into data/checkpoints/"
	@echo "make run-notebook NB=notebooks/01_language_model.ipynb   execute in full mode, outputs saved"

# The environment: a local CPU build of torch first when pip can see one (CI, this course's
# machines), so no multi-GB CUDA build is pulled; elsewhere pip picks the right torch itself.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@rm -rf $(VENV)/wheels; \
	if $(PY) -m pip download -q --no-index --no-deps torch -d $(VENV)/wheels >/dev/null 2>&1; then \
	  echo "installing the local torch wheel: $$(ls $(VENV)/wheels)"; \
	  $(PY) -m pip install -q $(VENV)/wheels/torch-*.whl; \
	fi
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

env: $(VENV)/.installed

demo: env
	$(BIN)/minimllm demo

assistant: env
	$(BIN)/minimllm assistant

captioner: env
	$(BIN)/minimllm train

gpu: env
	$(BIN)/minimllm train --preset gpu

lint: env
	$(BIN)/ruff check minimllm tests notebooks solutions exercises docs

unit: env
	MINIMLLM_QUICK=1 $(PY) -m pytest -q tests

fuzz: env
	HYPOTHESIS_PROFILE=fuzz MINIMLLM_QUICK=1 $(PY) -m pytest -q tests/test_properties*.py

nbtest: env
	MINIMLLM_QUICK=1 $(PY) -m pytest -q --nbval-lax --nbval-cell-timeout=$(CELL_TIMEOUT) -p no:randomly notebooks solutions

test: env
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory lint export-check exercises-check unit nbtest; rc=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s wall time (exit $$rc)"; exit $$rc

export: env
	$(PY) -m minimllm.nbtools export

update: env
	$(PY) -m minimllm.nbtools update

export-check: env
	$(PY) -m minimllm.nbtools export-check

exercises: env
	$(PY) -m minimllm.nbtools exercises

exercises-check: env
	$(PY) -m minimllm.nbtools exercises-check

grade: env
	@test -n "$(NB)" || (echo "usage: make grade NB=exercises/00_setup_and_data.ipynb" && exit 2)
	$(BIN)/minimllm grade $(NB)

checkpoints: env
	$(BIN)/minimllm checkpoints

run-notebook: env
	@test -n "$(NB)" || (echo "usage: make run-notebook NB=notebooks/01_language_model.ipynb" && exit 2)
	@# find_pretrained prefers a reader's own data/artifacts/<name> to the reference
	@# data/checkpoints/<name>: a model left there by an earlier run would change this one's outputs
	@shadow=$$(for m in $$(ls data/checkpoints); do test -f data/artifacts/$$m/config.json && \
	  echo data/artifacts/$$m; done); if test -n "$$shadow" && test -z "$(ALLOW_ARTIFACTS)"; then \
	  echo "run-notebook: $$shadow would stand in for the reference checkpoints of the same name" \
	  "(find_pretrained prefers them); committed outputs use the references: move them aside," \
	  "or set ALLOW_ARTIFACTS=1"; exit 2; fi
	MINIMLLM_QUICK=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.timeout=-1 $(NB)

lab: env
	$(BIN)/jupyter lab

# The course as a website (mkdocs.yml, docs/hooks.py): the committed outputs, never executed.
site: env
	@start=$$(date +%s); \
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site; rc=$$?; \
	echo "make site: $$(( $$(date +%s) - start )) s; open site/index.html (exit $$rc)"; exit $$rc

# Chapter 07's chat widget in a real browser (tests/browser/, CONTRIBUTING.md): JupyterLab runs the
# chapter in quick mode, headless Chromium asks the widget a question. Installs what is missing:
# Debian's chromium with apt-get (as root), playwright into .venv (the `browser` extra; never
# `playwright install`). When the browser cannot be installed it says so and exits 0.
browser-test: env
	@start=$$(date +%s); skip() { echo "make browser-test: SKIPPED: $$1"; exit 0; }; \
	if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make browser-test: installing Debian's chromium (apt-get install -y chromium chromium-driver)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	      || skip "apt-get could not install chromium"; \
	  else \
	    skip "/usr/bin/chromium is missing and apt-get is not usable here (not root, or no apt-get): run 'apt-get install -y chromium chromium-driver' as root"; \
	  fi; \
	  [ -x /usr/bin/chromium ] || skip "apt-get ran but /usr/bin/chromium is still missing"; \
	fi; \
	if ! $(PY) -c "import playwright.sync_api" 2>/dev/null; then \
	  echo "make browser-test: installing playwright into $(VENV) (pip install -e '.[browser]')"; \
	  $(PY) -m pip install -q -e '.[browser]' || skip "pip could not install playwright (the browser extra)"; \
	fi; \
	MINIMLLM_BROWSER=1 MINIMLLM_QUICK=1 $(PY) -m pytest -q -s tests/browser; rc=$$?; \
	echo "make browser-test: $$(( $$(date +%s) - start )) s wall time (exit $$rc)"; exit $$rc

widget-screenshot:
	MINIMLLM_WIDGET_MODEL=shipped $(MAKE) browser-test

clean:
	rm -rf data/cache data/artifacts .pytest_cache .ruff_cache site .cache/site .cache/mkdocs-jupyter
