"""Shared fixtures: the tiny model is built once per session (offline, deterministic)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """`.cache/models/helexa-tiny`, built if missing (make test builds it first)."""
    from helexa.testing.tiny_model import build

    out = REPO / ".cache" / "models" / "helexa-tiny"
    if not (out / "config.json").exists():
        build(out, size="tiny")
    return out


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 (`make test` fetches it first; fetched here if missing)."""
    from helexa.testing.smollm2 import fetch

    return fetch(REPO / ".cache" / "models" / "smollm2")
