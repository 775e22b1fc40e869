"""`helexa serve` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="(not yet implemented)")
    p.set_defaults(func=lambda _a: _todo("serve"))


def _todo(name: str) -> int:
    print(f"helexa {name}: not implemented yet")
    return 1
