"""Status conditions (Kubernetes style) the daemon keeps for /admin/fleet and `helexa status`.

A condition's `last_transition` moves only when its status flips, so an operator
can tell "broken since 10:02" from "broken, re-checked just now".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

ConditionType = Literal["ConfigValid", "Converged", "NeuronsReachable"]
CONDITION_TYPES: tuple[ConditionType, ...] = ("ConfigValid", "Converged", "NeuronsReachable")


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: bool
    reason: str  # CamelCase, machine-matchable: "ParseError", "ActionsPending", ...
    message: str  # for people: the file:line error, the pending actions, ...
    observed_generation: str | None  # the desired generation it was computed against
    last_transition: float  # unix seconds of the last status flip

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": "True" if self.status else "False",
            "reason": self.reason,
            "message": self.message,
            "observed_generation": self.observed_generation,
            "last_transition": self.last_transition,
        }


class Conditions:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_type: dict[ConditionType, Condition] = {}

    def set(
        self,
        kind: ConditionType,
        status: bool,
        reason: str,
        message: str,
        generation: str | None,
    ) -> Condition:
        current = self._by_type.get(kind)
        if current is not None and current.status == status:
            updated = replace(
                current, reason=reason, message=message, observed_generation=generation
            )
        else:
            updated = Condition(kind, status, reason, message, generation, self._clock())
        self._by_type[kind] = updated
        return updated

    def get(self, kind: ConditionType) -> Condition | None:
        return self._by_type.get(kind)

    def to_json(self) -> list[dict[str, Any]]:
        return [self._by_type[t].to_json() for t in CONDITION_TYPES if t in self._by_type]
