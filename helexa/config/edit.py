"""Format-preserving edits of fleet.toml / models.toml (tomlkit).

Only the edited values change; comments, order and blank lines stay byte-identical.
An edit is validated with the strict models before anything is written, and the
write is atomic (temp file in the same directory + os.replace) and keeps the mode.
"""

from __future__ import annotations

import copy
import difflib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import tomlkit
import tomlkit.exceptions
from pydantic import BaseModel
from tomlkit.container import Container
from tomlkit.items import AoT, Comment, Item, Key, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from helexa.config.aliases import is_pattern
from helexa.config.fleet import FleetConfig
from helexa.config.loader import parse_toml, validate
from helexa.config.models import ModelsConfig, ModelSpec
from helexa.errors import ConfigError, ConfigErrors

M = TypeVar("M", bound=BaseModel)
# An edit changes the document in place and says what it did.
Edit = Callable[[TOMLDocument, M], str]


@dataclass(frozen=True)
class EditResult:
    path: Path
    changed: bool
    summary: str  # what was (or would have been) done, for the CLI


def edit_text(
    text: str,
    path: Path,
    model: type[M],
    edit: Edit[M],
    context: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """Apply `edit` to TOML `text`; returns (new text, summary). Pure.

    Raises ConfigErrors if the file is invalid before (fix it first) or would be after.
    """
    current = validate(parse_toml(text, path), model, context=context)
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ConfigErrors([ConfigError(f"TOML (tomlkit): {exc}", file=path)]) from None
    try:
        summary = edit(document, current)
    except ConfigErrors as exc:
        # Edits refuse without knowing the path; say which file they refused.
        raise ConfigErrors(
            [
                ConfigError(e.message, file=e.file or path, line=e.line, key=e.key)
                for e in exc.errors
            ]
        ) from None
    new_text = document.as_string()
    validate(parse_toml(new_text, path), model, context=context)
    return new_text, summary


def edit_file(
    path: Path | str,
    model: type[M],
    edit: Edit[M],
    context: Mapping[str, Any] | None = None,
) -> EditResult:
    # Edit what a symlink points at, not the link itself.
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigErrors([ConfigError(f"cannot read: {exc}", file=path)]) from exc
    new_text, summary = edit_text(text, path, model, edit, context)
    if new_text == text:
        return EditResult(path, changed=False, summary=summary)
    write_atomic(path, new_text)
    return EditResult(path, changed=True, summary=summary)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never half."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


# -- models.toml ---------------------------------------------------------------------------


def pin_model(
    path: Path | str,
    name: str,
    replicas: int | None = None,
    context: Mapping[str, Any] | None = None,
    *,
    add: bool = False,
    model_path: Path | None = None,
) -> EditResult:
    """`pin = true` (and `replicas = N` when given) on a model.

    A name models.toml does not know is an error (with a did-you-mean) unless `add`:
    then a new entry is written, with `model_path` (a local directory) when given,
    else the id is fetched from the Hugging Face hub on first load.
    """
    return edit_file(path, ModelsConfig, _pin_edit(name, replicas, add, model_path), context)


def unpin_model(
    path: Path | str, name: str, context: Mapping[str, Any] | None = None
) -> EditResult:
    return edit_file(path, ModelsConfig, _unpin_edit(name), context)


def _pin_edit(
    name: str, replicas: int | None, add: bool, model_path: Path | None
) -> Edit[ModelsConfig]:
    def edit(document: TOMLDocument, current: ModelsConfig) -> str:
        spec = _named(current, name)
        model_id = spec.id if spec else name
        values: dict[str, Any] = {"pin": True}
        if replicas is not None:
            values["replicas"] = replicas
        entry = _entry(document, "models", "id", model_id)
        if spec is not None and model_path is not None:
            raise ConfigErrors(
                [ConfigError(f"{model_id} is already in models.toml: edit its path there")]
            )
        if entry is None:
            if not add:
                raise ConfigErrors([ConfigError(_unknown_model(current, name))])
            added: dict[str, Any] = {"id": model_id}
            if model_path is not None:
                added["path"] = str(model_path)
            _append_entry(document, "models", {**added, **values})
        else:
            _set_entry_values(document, "models", entry, values)
        count = replicas if replicas is not None else (spec.replicas if spec else 1)
        return f"pinned {model_id} (replicas = {count})"

    return edit


def _unpin_edit(name: str) -> Edit[ModelsConfig]:
    def edit(document: TOMLDocument, current: ModelsConfig) -> str:
        spec = _named(current, name)
        entry = _entry(document, "models", "id", spec.id) if spec else None
        if spec is None or entry is None:
            raise ConfigErrors([ConfigError(f"no model {name!r}", key="models")])
        if not spec.pin:
            return f"{spec.id} is not pinned"  # absent `pin` already means false
        _set_entry_values(document, "models", entry, {"pin": False})
        return f"unpinned {spec.id}"

    return edit


def _unknown_model(current: ModelsConfig, name: str) -> str:
    known = [m.id for m in current.models] + [
        alias for alias in current.all_aliases() if not is_pattern(alias)
    ]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"no model {name!r} in models.toml{hint}; to add it: "
        f"`helexa pin {name} --add --path DIR` (a local model directory), "
        f"or `--add` alone for a Hugging Face hub id"
    )


def _named(current: ModelsConfig, name: str) -> ModelSpec | None:
    """The model `name` is the id or an exact alias of; patterns are not followed, so
    `helexa pin claude-x` never pins whatever "claude-*" happens to point at."""
    target = current.all_aliases().get(name) if not is_pattern(name) else None
    return current.get(name) or (current.get(target) if target else None)


# -- fleet.toml ----------------------------------------------------------------------------


def upsert_neuron(path: Path | str, name: str, values: Mapping[str, Any]) -> EditResult:
    """Add a `[[neurons]]` entry named `name`, or update the keys in `values` on it."""
    return edit_file(path, FleetConfig, _upsert_neuron_edit(name, values))


def _upsert_neuron_edit(name: str, values: Mapping[str, Any]) -> Edit[FleetConfig]:
    plain = {key: str(v) if isinstance(v, Path) else v for key, v in values.items()}

    def edit(document: TOMLDocument, current: FleetConfig) -> str:
        entry = _entry(document, "neurons", "name", name)
        if entry is None:
            _append_entry(document, "neurons", {"name": name, **plain})
            return f"added neuron {name}"
        _set_entry_values(document, "neurons", entry, plain)
        return f"updated neuron {name}"

    return edit


# -- tomlkit helpers -----------------------------------------------------------------------


def _entry(document: TOMLDocument, array: str, key: str, value: str) -> Table | None:
    """The entry of array-of-tables `array` whose `key` equals `value`."""
    entries = document.get(array)
    if not isinstance(entries, AoT):
        return None
    return next((t for t in entries.body if t.get(key) == value), None)


def _set_entry_values(
    document: TOMLDocument, array: str, entry: Table, values: Mapping[str, Any]
) -> None:
    """Set `values` on `entry` of `array`: existing keys in place, new ones after the last key.

    tomlkit has no public "insert after": a new key is placed by rebuilding the entry
    from its items (public Container/Table API) and putting it back in the array.
    """
    new_keys: dict[str, Any] = {}
    for key, value in values.items():
        if key in entry:
            if entry[key] != value:
                _replace_keeping_comment_column(entry, key, value)
        else:
            new_keys[key] = value
    if not new_keys:
        return
    entries = document[array]
    assert isinstance(entries, AoT)
    index = next(i for i, table in enumerate(entries.body) if table is entry)
    entries[index] = _with_keys(entry, new_keys)


def _with_keys(table: Table, values: Mapping[str, Any]) -> Table:
    """`table` rebuilt with `values` right after its last key, not after the comments and
    blank lines that introduce what follows (tomlkit's append lands after those, and adds
    a blank line before sub-tables)."""
    items = list(table.value.body)
    last = max(
        (i for i, (key, item) in enumerate(items) if key is not None and _is_value(item)),
        default=None,
    )
    if last is None:
        rebuilt = _rebuilt(table, items)
        for key, value in values.items():
            rebuilt.append(key, value)
        return rebuilt
    indent = items[last][1].trivia.indent
    added: list[tuple[str | Key | None, Item]] = []
    for key, value in values.items():
        item = tomlkit.item(value)
        item.trivia.indent = indent
        added.append((key, item))
    return _rebuilt(table, [*items[: last + 1], *added, *items[last + 1 :]])


def _is_value(item: Item) -> bool:
    return not isinstance(item, Table | AoT | Whitespace | Comment)


def _rebuilt(table: Table, items: Sequence[tuple[str | Key | None, Item]]) -> Table:
    """A copy of `table` (same header, trivia and kind) holding exactly `items`."""
    container = Container(parsed=True)  # parsed: append adds no formatting of its own
    for key, item in items:
        container.append(key, item)
    return Table(
        container,
        copy.copy(table.trivia),
        table.is_aot_element(),
        table.is_super_table(),
        table.name,
        table.display_name,
    )


def _replace_keeping_comment_column(table: Table, key: str, value: Any) -> None:
    """Set `key`; a trailing comment stays in its column (`true` -> `false` is one wider)."""
    old = table.item(key)
    old_width = len(old.as_string()) if isinstance(old, Item) else 0
    table[key] = value  # tomlkit keeps the key's trailing comment (trivia)
    new = table.item(key)
    if isinstance(old, Item) and isinstance(new, Item) and new.trivia.comment:
        spaces = len(new.trivia.comment_ws) + old_width - len(new.as_string())
        new.trivia.comment_ws = " " * max(1, spaces)


def _append_entry(document: TOMLDocument, array: str, values: Mapping[str, Any]) -> None:
    """A new last entry of `array`, set off by a blank line like its neighbours.

    Comments after a blank line at the end of the previous entry introduce whatever
    follows the array, so they move below the new entry rather than above it.
    """
    table = tomlkit.table()
    for key, value in values.items():
        table.add(key, value)
    entries = document.get(array)
    if not isinstance(entries, AoT):
        if document.as_string().strip():
            table.trivia.indent = "\n"
        document.append(array, tomlkit.aot())
        entries = document[array]
        assert isinstance(entries, AoT)
    trailer: list[Item] = []
    if entries.body:
        last, trailer = _split_trailer(entries.body[-1])
        if trailer:
            entries[len(entries.body) - 1] = last
    if entries.body and not entries.as_string().endswith("\n\n"):
        table.trivia.indent = "\n"
    for item in trailer:
        table.value.append(None, item)
    if not trailer and _followed_by_more(document, array):
        table.add(tomlkit.nl())
    entries.append(table)


def _split_trailer(table: Table) -> tuple[Table, list[Item]]:
    """`table` without the comments/blank lines that end it (from a blank line on), and those.

    A sub-table ends the entry when it is last, so the trailer is looked for there.
    """
    items = list(table.value.body)
    key, sub = items[-1] if items else (None, None)
    if isinstance(sub, Table):
        rebuilt_sub, trailer = _split_trailer(sub)
        if not trailer:
            return table, []
        return _rebuilt(table, [*items[:-1], (key, rebuilt_sub)]), trailer
    start = len(items)
    while start > 0 and isinstance(items[start - 1][1], Whitespace | Comment):
        start -= 1
    blank = next((i for i in range(start, len(items)) if isinstance(items[i][1], Whitespace)), None)
    if blank is None:
        return table, []
    return _rebuilt(table, items[:blank]), [item for _, item in items[blank:]]


def _followed_by_more(document: TOMLDocument, array: str) -> bool:
    keys = [key.key for key, _ in document.body if key is not None]
    return bool(keys) and keys[-1] != array
