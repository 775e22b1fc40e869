"""Pure rendering of `/admin/fleet` JSON for `helexa status`: data in, text out.

`build(fleet, width, now)` returns rich renderables (for the live `--watch`
view); `render(fleet, width, now)` returns them as plain text, which is what
the snapshot tests compare. Nothing here does I/O or reads the clock: `now`
is passed in so idle times are reproducible.

Below `NARROW_WIDTH` columns (a phone, a split terminal) the tables drop their
least useful columns instead of wrapping every cell.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

Json = Mapping[str, Any]

NARROW_WIDTH = 80
RECENT_DECISIONS = 8
BAR_WIDE, BAR_NARROW = 20, 10
STATE_STYLES = {
    "loaded": "green",
    "loading": "yellow",
    "unloading": "yellow",
    "failed": "red",
}


def render(fleet: Json, width: int, now: float) -> str:
    """The whole status view as plain text `width` columns wide (no colour codes)."""
    console = Console(
        file=io.StringIO(), width=width, color_system=None, force_terminal=False, record=True
    )
    console.print(build(fleet, width, now))
    return console.export_text()


def build(fleet: Json, width: int, now: float) -> Group:
    """Header, neurons, models, decisions and reconcile state as rich renderables."""
    narrow = width < NARROW_WIDTH
    parts: list[RenderableType] = [header(fleet)]
    for warning in (fleet.get("health") or {}).get("warnings", []):
        parts.append(Text(str(warning), "yellow"))
    config_error = (fleet.get("config") or {}).get("error")
    if config_error:
        parts.append(Text(f"config error (last good config in use):\n{config_error}", "red"))
    parts.append(neurons_table(fleet.get("neurons", []), narrow))
    parts.append(models_table(fleet, now, narrow))
    parts.extend(prefix_cache_lines(fleet.get("prefix_cache") or []))
    parts.append(decisions_table(fleet.get("decisions", [])[-RECENT_DECISIONS:], narrow))
    parts.extend(reconcile_tables(fleet.get("reconcile"), narrow))
    return Group(*parts)


def header(fleet: Json) -> Text:
    health = fleet.get("health") or {}
    counts = health.get("neurons") or {}
    status = str(health.get("status", "unknown"))
    style = {"ok": "bold green", "degraded": "bold yellow"}.get(status, "bold red")
    text = Text("helexa fleet ", "bold")
    text.append(status, style)
    text.append(f"  {counts.get('healthy', 0)}/{counts.get('total', 0)} neurons up")
    return text


def memory_bar(used_mb: int, total_mb: int, width: int) -> Text:
    """`[██████░░░░]  3.1/8.0 GB` with the fill coloured by how full the device is."""
    fraction = used_mb / total_mb if total_mb > 0 else 0.0
    filled = min(width, round(fraction * width))
    style = "red" if fraction >= 0.9 else "yellow" if fraction >= 0.7 else "green"
    bar = Text("[")
    bar.append("█" * filled, style)
    bar.append("░" * (width - filled), "dim")
    bar.append(f"] {gigabytes(used_mb)}/{gigabytes(total_mb)}")
    return bar


def neurons_table(neurons: Sequence[Json], narrow: bool) -> Group:
    """One row per device, then one line per down neuron with why it is down."""
    table = Table(title="neurons", title_justify="left", expand=False)
    table.add_column("neuron", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("device", no_wrap=not narrow)
    table.add_column("memory", no_wrap=True)
    if not narrow:
        table.add_column("models", justify="right")
    bar_width = BAR_NARROW if narrow else BAR_WIDE
    notes: list[Text] = []
    for neuron in neurons:
        up = bool(neuron.get("healthy"))
        starting = not up and bool(neuron.get("starting"))
        if up:
            state = Text("up", "green")
        else:
            state = Text("starting", "yellow") if starting else Text("down", "red")
        models = str(len(neuron.get("models", [])))
        if starting:
            why = neuron.get("last_error") or "no poll yet"
            notes.append(Text(f"{neuron['name']} has not answered yet: {why}", "yellow"))
        elif not up:
            why = neuron.get("last_error") or "never answered"
            notes.append(Text(f"{neuron['name']} is down: {why}", "red"))
        devices = neuron.get("devices", [])
        if not devices:
            table.add_row(neuron["name"], state, "-", "-", *([] if narrow else [models]))
            continue
        for position, device in enumerate(devices):
            first = position == 0
            label = f"{device['kind']}:{device['index']}"
            if not narrow:
                label += f" {device['name']}"
            used = device["memory_total_mb"] - device["memory_free_mb"]
            row = [
                neuron["name"] if first else "",
                state if first else Text(""),
                label,
                memory_bar(used, device["memory_total_mb"], bar_width),
            ]
            table.add_row(*row, *([] if narrow else [models if first else ""]))
    return Group(table, *notes)


def models_table(fleet: Json, now: float, narrow: bool) -> Table:
    """One row per (model, location); a model held nowhere gets one "not loaded" row."""
    details = location_details(fleet.get("neurons", []))
    load_started = load_decision_times(fleet.get("decisions", []))
    table = Table(title="models", title_justify="left", expand=False)
    table.add_column("model", overflow="fold")
    table.add_column("where", no_wrap=True)
    if not narrow:
        table.add_column("engine", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("busy", justify="right", no_wrap=True)
    if not narrow:
        table.add_column("memory", justify="right", no_wrap=True)
    table.add_column("pin", no_wrap=True)
    table.add_column("idle", justify="right", no_wrap=True)
    for model in fleet.get("models", []):
        pinned = "pin" if model.get("pinned") else ""
        locations = model.get("locations", [])
        if not locations:
            engines = [] if narrow else [str(model.get("engine", "transformers"))]
            row: list[RenderableType] = [model["id"], "-", *engines, Text("not loaded", "dim"), ""]
            table.add_row(*row, *([] if narrow else [""]), pinned, "")
            continue
        for position, loc in enumerate(locations):
            detail = details.get((model["id"], loc["neuron"]), {})
            state = str(loc["state"])
            busy = f"{loc.get('in_flight', 0)}+{loc.get('queued', 0)}q"
            engine = str(loc.get("engine") or model.get("engine") or "transformers")
            row = [
                model["id"] if position == 0 else "",
                loc["neuron"],
                *([] if narrow else [engine]),
                Text(state, STATE_STYLES.get(state, "")),
                busy,
            ]
            memory = [gigabytes(int(loc.get("memory_mb") or 0))]
            idle = activity(detail, loc, load_started.get((model["id"], loc["neuron"])), now)
            table.add_row(*row, *([] if narrow else memory), pinned if position == 0 else "", idle)
    return table


def prefix_cache_lines(rows: Sequence[Json]) -> list[Text]:
    """Per model with prompt tokens counted: the share the neurons' prefix caches served."""
    lines = []
    for row in rows:
        prompt, cached = int(row.get("prompt_tokens") or 0), int(row.get("cached_tokens") or 0)
        if prompt:
            lines.append(
                Text(
                    f"prefix cache {row['model']}: {cached / prompt:.0%} hit"
                    f" ({cached:,} of {prompt:,} prompt tokens)"
                )
            )
    return lines


def load_decision_times(decisions: Sequence[Json]) -> dict[tuple[str, str | None], float]:
    """(model, neuron) -> when its latest load was decided: how long a load has taken."""
    return {(d["model"], d.get("neuron")): float(d["at"]) for d in decisions if d["kind"] == "load"}


def location_details(neurons: Sequence[Json]) -> dict[tuple[str, str], Json]:
    """(model, neuron) -> the neuron's full model entry (timestamps, error)."""
    return {(m["model"], n["name"]): m for n in neurons for m in n.get("models", [])}


def activity(detail: Json, location: Json, load_started: float | None, now: float) -> str:
    """How long a load has taken, or since the copy last served (or loaded); or "busy"."""
    if location.get("state") == "loading":
        # "loading 42% 1m": weights read so far (when the neuron measures it), time taken
        parts = ["loading"]
        if location.get("progress") is not None:
            parts.append(f"{int(location['progress'])}%")
        if load_started is not None:
            parts.append(duration(max(0.0, now - load_started)))
        if len(parts) > 1:
            return " ".join(parts)
    if location.get("in_flight") or location.get("queued"):
        return "busy"
    since = detail.get("last_used_at") or detail.get("loaded_at")
    if since is None or location.get("state") != "loaded":
        return "-"
    return duration(max(0.0, now - float(since)))


def decisions_table(decisions: Sequence[Json], narrow: bool) -> Table:
    table = Table(title="recent decisions", title_justify="left", expand=False)
    table.add_column("at", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    table.add_column("model", overflow="fold")
    if not narrow:
        table.add_column("neuron", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for d in decisions:
        at = clock_time(float(d["at"]))
        neuron = d.get("neuron") or "-"
        if narrow:
            table.add_row(at, d["kind"], f"{d['model']} @ {neuron}", d["reason"])
        else:
            table.add_row(at, d["kind"], d["model"], neuron, d["reason"])
    return table


def reconcile_tables(reconcile: Json | None, narrow: bool) -> list[RenderableType]:
    """Conditions (status, reason, message) and the actions the last plan holds."""
    if not reconcile:
        return [Text("reconcile: not running in this gateway", "dim")]
    conditions = Table(title="reconcile", title_justify="left", expand=False)
    conditions.add_column("condition", no_wrap=True)
    conditions.add_column("ok", no_wrap=True)
    if not narrow:
        conditions.add_column("reason", no_wrap=True)
    conditions.add_column("message", overflow="fold")
    for c in reconcile.get("conditions", []):
        ok = c.get("status") == "True"
        verdict = Text("yes" if ok else "no", "green" if ok else "red")
        reason = [] if narrow else [c["reason"]]
        conditions.add_row(c["type"], verdict, *reason, c.get("message") or "")
    out: list[RenderableType] = [conditions]
    pending = reconcile.get("pending", [])
    if pending:
        actions = Table(title="plan", title_justify="left", expand=False)
        actions.add_column("", no_wrap=True)
        actions.add_column("action", no_wrap=True)
        actions.add_column("target", overflow="fold")
        actions.add_column("reason", overflow="fold")
        for a in pending:
            # A model action names its model; a host action its package, path or unit.
            target = f"{a.get('model') or a.get('target')} @ {a.get('neuron')}"
            actions.add_row(a.get("symbol") or "", a["kind"], target, a.get("reason") or "")
        out.append(actions)
    elif not narrow:
        out.append(Text("plan: no pending actions", "dim"))
    return out


def gigabytes(mb: int) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb} MB"


def duration(seconds: float) -> str:
    """Compact age: 42s, 7m, 3h05m, 2d04h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")
