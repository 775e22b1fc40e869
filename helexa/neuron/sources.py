"""Where a load or tokenize request may read weights from (pure checks, no I/O beyond
resolving the path).

- `path` must be absolute; `..` and symlinks are resolved first, and with `[neuron]
  model_roots` set the result must lie inside one of them (a relative path would
  resolve against the neuron's working directory; `../x` reached anywhere).
- Without `path` the model id is a hub repository: allowed when `offline = true` (only
  the local cache is read) or `allow_hub_ids = true` (it may be downloaded).

The refusals name neither the resolved path nor whether it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from helexa.errors import BadRequest
from helexa.neuron.config import NeuronSection


def confined_path(path: str | None, section: NeuronSection) -> str | None:
    """`path` resolved and checked against the model roots; None for a hub id (checked).

    Raises BadRequest for what may not be loaded.
    """
    if path is None:
        if not (section.offline or section.allow_hub_ids):
            raise BadRequest(
                "this neuron loads local paths only: give `path` (hub ids need "
                "allow_hub_ids = true in its neuron.toml)",
                param="path",
            )
        return None
    if "\x00" in path or not os.path.isabs(path):
        raise BadRequest("path must be an absolute directory path", param="path")
    resolved = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(root)) for root in section.model_roots]
    if roots and not any(resolved.is_relative_to(root) for root in roots):
        raise BadRequest("path is outside this neuron's model_roots", param="path")
    return str(resolved)
