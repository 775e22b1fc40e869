"""Plan data: counts, symbols, and refusing files that are not plans."""

from __future__ import annotations

import pytest

from helexa.errors import PlanFileError
from helexa.reconcile.plan import Action, Plan


def test_counts_and_symbols() -> None:
    plan = Plan(
        "g",
        "o",
        actions=(
            Action("a1", "unload", "a", "x", "removed", "r"),
            Action("a2", "reload", "a", "y", "changed", "r"),
            Action("a3", "load", "a", "z", "pinned", "r", depends_on=("a1",)),
            Action("a4", "restart", "a", "*", "defrag", "r"),
        ),
    )
    assert plan.counts() == {
        "load": 1, "unload": 1, "change": 1, "restart": 1, "host": 0, "errors": 0,
    }  # fmt: skip
    assert [a.symbol for a in plan.actions] == ["-", "~", "+", "↻"]
    assert [a.destructive for a in plan.actions] == [True, False, False, False]
    assert plan.action("a3").key == ("load", "a", "z")


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"format": 99},
        {"format": 1, "generation": "g"},
        {"format": 1, "generation": "g", "observed": "o", "actions": [{"id": "a1"}], "errors": []},
    ],
)
def test_anything_but_a_plan_is_refused(data: object) -> None:
    with pytest.raises(PlanFileError):
        Plan.from_json(data)
