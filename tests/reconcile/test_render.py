"""Golden tests of the rendered plan (text and JSON) and the JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

from helexa.reconcile.diff import diff
from helexa.reconcile.plan import Plan
from helexa.reconcile.render import NO_CHANGES, render_json, render_text, summary_line
from tests.reconcile.fleets import desired, fleet, hold, observed, spec

GOLDEN = Path(__file__).resolve().parent / "golden"


def busy_plan() -> Plan:
    """Every kind of line: removal, reload, eviction + load, a warning and an error."""
    state = hold(hold(fleet(a=1000, b=4000), "a", "idle-one", 800), "b", "gone", 300)
    hold(state, "b", "q", 400, dtype="float32")
    down = fleet(c=100).neurons["c"]
    down.healthy, down.starting, down.last_error = False, False, "connection refused"
    state.neurons["c"] = down
    specs = (
        spec("idle-one"),
        spec("m", pin=True, vram_mb=600, neurons=["a"]),
        spec("q", dtype="bfloat16", vram_mb=300),
        spec("big", pin=True, vram_mb=90000),
    )
    return diff(desired(*specs, generation="3f2a9c1d0e12" + "0" * 52), observed(state), now=400.0)


def test_text_matches_golden() -> None:
    assert render_text(busy_plan()) == (GOLDEN / "plan.txt").read_text(encoding="utf-8")


def test_json_matches_golden() -> None:
    assert render_json(busy_plan()) == (GOLDEN / "plan.json").read_text(encoding="utf-8")


def test_json_round_trips_to_the_same_plan() -> None:
    plan = busy_plan()
    again = Plan.from_json(json.loads(render_json(plan)))
    assert again == plan


def test_a_clean_plan_says_so_and_shows_no_legend() -> None:
    state = hold(fleet(a=1000), "a", "m", 100)
    text = render_text(diff(desired(spec("m", pin=True, dtype="float32")), observed(state)))
    assert text.endswith(NO_CHANGES + "\n")
    assert "Legend" not in text


def test_summary_counts_each_kind() -> None:
    state = hold(fleet(a=1000, b=1000), "a", "gone", 100)
    plan = diff(desired(spec("m", pin=True, replicas=2)), observed(state))
    assert summary_line(plan) == "Plan: 2 to load, 1 to unload, 0 to change."
