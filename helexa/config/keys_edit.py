"""Format-preserving edits of keys.toml (tomlkit): add a key's hash, revoke a key.

Like every edit (helexa.config.edit) the result is validated before it is
written, comments and order stay, and the write is atomic. A new keys file
is created readable by its owner only: it holds no keys, but its hashes
and limits are nobody else's business.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tomlkit.items import AoT
from tomlkit.toml_document import TOMLDocument

from helexa.config.edit import EditResult, _append_entry, _entry, edit_file
from helexa.config.keys import KeysConfig
from helexa.errors import ConfigError, ConfigErrors

NEW_FILE_HEADER = """\
# helexa API keys (docs/keys.md). Only SHA-256 hashes are stored here: a key is
# printed once by `helexa keys add` and never written anywhere.
"""
NEW_FILE_MODE = 0o600


def add_key(path: Path, values: dict[str, Any]) -> EditResult:
    """Append a `[[keys]]` entry (`values` holds name, sha256, ...); the name must be new."""
    if not path.exists():
        _create(path)
    name = values["name"]

    def edit(document: TOMLDocument, current: KeysConfig) -> str:
        if current.get(name) is not None:
            raise ConfigErrors([ConfigError(f"a key named {name!r} already exists", key="keys")])
        _append_entry(document, "keys", values)
        return f"added key {name}"

    return edit_file(path, KeysConfig, edit)


def _create(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
    except FileExistsError:
        return  # created meanwhile: edit that one
    except OSError as exc:
        raise ConfigErrors([ConfigError(f"cannot create: {exc}", file=path)]) from exc
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(NEW_FILE_HEADER)


def revoke_key(path: Path, name: str) -> EditResult:
    """Remove the `[[keys]]` entry named `name`: the key stops working at the next reload."""

    def edit(document: TOMLDocument, current: KeysConfig) -> str:
        entry = _entry(document, "keys", "name", name)
        entries = document.get("keys")
        if entry is None or not isinstance(entries, AoT):
            raise ConfigErrors([ConfigError(f"no key named {name!r}", key="keys")])
        index = next(i for i, table in enumerate(entries.body) if table is entry)
        del entries[index]
        if not entries.body:
            del document["keys"]
        return f"revoked key {name}"

    return edit_file(path, KeysConfig, edit)
