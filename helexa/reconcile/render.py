"""The plan as an operator reads it (fixed legend, one reason per action) and as JSON."""

from __future__ import annotations

import json

from helexa.reconcile.plan import LEGEND, Action, Plan

NO_CHANGES = "No changes. The fleet matches models.toml."
SHORT_HASH = 12


def summary_line(plan: Plan) -> str:
    if not plan.actions and not plan.errors:
        return NO_CHANGES
    counts = plan.counts()
    line = (
        f"Plan: {counts['load']} to load, {counts['unload']} to unload, "
        f"{counts['change']} to change."
    )
    if plan.errors:
        noun = "error" if len(plan.errors) == 1 else "errors"
        line += f" {len(plan.errors)} {noun}: nothing will be applied."
    return line


def action_line(action: Action) -> str:
    """`+ load helexa/tiny on a`, with what changes and what it waits for."""
    verb = {"load": "load", "unload": "unload", "reload": "reload"}[action.kind]
    where = "from" if action.kind == "unload" else "on"
    line = f"{action.symbol} {verb} {action.model} {where} {action.neuron}"
    if action.destructive:
        line += " (destructive)"
    if action.depends_on:
        line += f" (after {', '.join(action.depends_on)})"
    return line


def render_text(plan: Plan) -> str:
    lines = [
        f"Desired generation {plan.generation[:SHORT_HASH]}, "
        f"observed fleet {plan.observed[:SHORT_HASH]}.",
        "",
    ]
    if plan.actions:
        lines += [f"Legend: {LEGEND}", ""]
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
