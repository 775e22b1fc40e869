"""The plan as an operator reads it (fixed legend, one reason per action) and as JSON."""

from __future__ import annotations

import json

from helexa.deploy.hostplan import SECRET_MASK, HostAction
from helexa.reconcile.plan import LEGEND, Plan, Step

NO_CHANGES = "No changes. The fleet matches models.toml."
SHORT_HASH = 12


def summary_line(plan: Plan) -> str:
    if not plan.has_changes and not plan.errors:
        return NO_CHANGES
    counts = plan.counts()
    line = (
        f"Plan: {counts['load']} to load, {counts['unload']} to unload, "
        f"{counts['change']} to change"
    )
    if counts["restart"]:
        line += f", {_count(counts['restart'], 'neuron')} to restart"
    if plan.host_actions:
        hosts = len({a.neuron for a in plan.host_actions})
        line += f", {_count(counts['host'], 'host action')} on {_count(hosts, 'host')}"
    line += "."
    if plan.errors:
        noun = "error" if len(plan.errors) == 1 else "errors"
        line += f" {len(plan.errors)} {noun}: nothing will be applied."
    return line


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def action_line(action: Step) -> str:
    """`+ load helexa/tiny on a`, with what changes and what it waits for."""
    if isinstance(action, HostAction):
        return host_action_line(action)
    if action.kind == "restart":
        line = f"{action.symbol} restart neuron {action.neuron}"
    else:
        where = "from" if action.kind == "unload" else "on"
        line = f"{action.symbol} {action.kind} {action.model} {where} {action.neuron}"
    if action.destructive:
        line += " (destructive)"
    if action.depends_on:
        line += f" (after {', '.join(action.depends_on)})"
    return line


def host_action_line(action: HostAction) -> str:
    """`~ write_file /etc/helexa/neuron.toml on beast`; the reason goes on its own line."""
    line = f"{action.symbol} {action.kind} {action.target} on {action.neuron}"
    if action.depends_on:
        line += f" (after {', '.join(action.depends_on)})"
    return line


def host_action_details(action: HostAction) -> list[str]:
    """A write_file's unified diff, or a note where its content is a secret."""
    after = action.after or {}
    if action.kind != "write_file":
        return []
    if after.get("content") == SECRET_MASK:
        return ["(secret: content not shown)"]
    if after.get("diff"):
        return str(after["diff"]).splitlines()
    if action.before is None:
        return [f"new file, mode {after.get('mode')}, owner {after.get('owner')}"]
    return []


def render_text(plan: Plan) -> str:
    lines = [
        f"Desired generation {plan.generation[:SHORT_HASH]}, "
        f"observed fleet {plan.observed[:SHORT_HASH]}.",
        "",
    ]
    if plan.has_changes:
        lines += [f"Legend: {LEGEND}", ""]
        for host_action in plan.host_actions:
            lines.append(f"  {host_action.id:>3} {host_action_line(host_action)}")
            lines.append(f"        {host_action.reason}")
            lines += [f"          {detail}" for detail in host_action_details(host_action)]
        for action in plan.actions:
            lines.append(f"  {action.id:>3} {action_line(action)}")
            lines.append(f"        {action.reason}")
        lines.append("")
    if plan.warnings:
        lines += ["Warnings:", *(f"  ! {w}" for w in plan.warnings), ""]
    if plan.errors:
        lines += ["Errors:", *(f"  ✗ {e.model}: {e.message}" for e in plan.errors), ""]
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=False) + "\n"
