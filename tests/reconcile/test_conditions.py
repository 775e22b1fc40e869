"""Conditions keep last_transition across re-checks; it moves only on a flip."""

from __future__ import annotations

from helexa.reconcile.conditions import Conditions


def test_last_transition_moves_only_when_the_status_flips() -> None:
    now = [100.0]
    conditions = Conditions(clock=lambda: now[0])
    conditions.set("ConfigValid", False, "Invalid", "models.toml:3: boom", "g1")
    now[0] = 200.0
    again = conditions.set("ConfigValid", False, "Invalid", "models.toml:4: other", "g1")
    assert (again.last_transition, again.message) == (100.0, "models.toml:4: other")
    now[0] = 300.0
    fixed = conditions.set("ConfigValid", True, "Valid", "", "g2")
    assert fixed.last_transition == 300.0
    assert conditions.to_json() == [
        {
            "type": "ConfigValid",
            "status": "True",
            "reason": "Valid",
            "message": "",
            "observed_generation": "g2",
            "last_transition": 300.0,
        }
    ]


def test_conditions_are_listed_in_a_fixed_order() -> None:
    conditions = Conditions(clock=lambda: 0.0)
    conditions.set("NeuronsReachable", True, "AllReachable", "", None)
    conditions.set("ConfigValid", True, "Valid", "", None)
    assert [c["type"] for c in conditions.to_json()] == ["ConfigValid", "NeuronsReachable"]
