"""The one disk fact placement can use before a load measures a model: its weights' size.

Both the cold-load path (helexa.gateway.coldload) and the reconciler
(helexa.reconcile.desired) read it here, so both place a model with the same
footprint (placement.footprint: measured, then vram_mb, then this x 1.2).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from helexa.config import ModelSpec


def local_weights_bytes(spec: ModelSpec) -> int | None:
    """Total size of the *.safetensors files in a model's local `path`; None without one."""
    if spec.path is None:
        return None
    directory = Path(spec.path)
    if not directory.is_dir():
        return None
    total = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
    return total or None


def weights_by_id(specs: Iterable[ModelSpec]) -> dict[str, int]:
    """model id -> weights size, for the models whose size is known."""
    sizes = ((spec.id, local_weights_bytes(spec)) for spec in specs)
    return {model_id: size for model_id, size in sizes if size}
