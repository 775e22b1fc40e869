"""Figures from the last run (requests served, faults injected, inputs tried, errors),
kept in .cache/reliability/figures.json for docs/reliability.md."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).resolve().parents[2] / ".cache" / "reliability" / "figures.json"
_lock = threading.Lock()


def record(name: str, **figures: Any) -> None:
    with _lock:
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        current: dict[str, Any] = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
        current[name] = figures
        FIGURES.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
