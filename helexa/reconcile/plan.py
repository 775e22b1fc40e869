"""A plan is data: typed actions with reasons and dependencies, plus the problems found.

The JSON form (`Plan.to_json`, schema in docs/operating.md) is stable: fields are
only ever added, and `format` is bumped on any incompatible change.  A saved plan
carries the fingerprints of the desired and observed state it was made from, so
apply can refuse it once either moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from helexa.deploy.hostplan import HostAction
from helexa.errors import PlanFileError

PLAN_FORMAT = 1

# "restart": a whole neuron (model "*"), restarted by whoever supervises it (defrag).
ActionKind = Literal["load", "unload", "reload", "restart"]
# Which rule produced an action: what auto_apply and the reason line are keyed on.
# keep_alive (idle unloads) and defrag are the fleet's upkeep, not models.toml changes.
Cause = Literal["pinned", "changed", "removed", "excess", "evict", "keep_alive", "defrag"]
UPKEEP_CAUSES: frozenset[Cause] = frozenset({"keep_alive", "defrag"})

SYMBOLS: Mapping[ActionKind, str] = {"load": "+", "unload": "-", "reload": "~", "restart": "↻"}
LEGEND = "+ load/create   - unload/remove   ~ change   ↻ restart"
# Unloads of models the operator no longer asks for: logged as destructive, and
# only applied by the daemon when auto_apply allows it.
DESTRUCTIVE_CAUSES: frozenset[Cause] = frozenset({"removed", "excess"})


@dataclass(frozen=True)
class Action:
    id: str  # "a1", "a2", ... in plan order
    kind: ActionKind
    neuron: str
    model: str
    cause: Cause
    reason: str
    before: Mapping[str, Any] | None = None  # the copy as observed; None = absent
    after: Mapping[str, Any] | None = None  # the copy as it will be; None = absent
    depends_on: tuple[str, ...] = ()

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.kind]

    @property
    def destructive(self) -> bool:
        return self.cause in DESTRUCTIVE_CAUSES

    @property
    def key(self) -> tuple[str, str, str]:
        """What the action is about, independent of plan order (backoff is kept per key)."""
        return (self.kind, self.neuron, self.model)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "symbol": self.symbol,
            "neuron": self.neuron,
            "model": self.model,
            "cause": self.cause,
            "reason": self.reason,
            "before": dict(self.before) if self.before is not None else None,
            "after": dict(self.after) if self.after is not None else None,
            "depends_on": list(self.depends_on),
            "destructive": self.destructive,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Action:
        return cls(
            id=str(data["id"]),
            kind=data["kind"],
            neuron=str(data["neuron"]),
            model=str(data["model"]),
            cause=data["cause"],
            reason=str(data["reason"]),
            before=data.get("before"),
            after=data.get("after"),
            depends_on=tuple(data.get("depends_on") or ()),
        )


# One step of a plan: a model action on a neuron, or a host action over SSH (its
# `target` is a package, a path or a unit; ids are "a1".. and "h1.." respectively).
Step = Action | HostAction


def host_action_from_json(data: Mapping[str, Any]) -> HostAction:
    return HostAction(
        id=str(data["id"]),
        kind=data["kind"],
        neuron=str(data["neuron"]),
        target=str(data["target"]),
        reason=str(data["reason"]),
        before=data.get("before"),
        after=data.get("after"),
        depends_on=tuple(data.get("depends_on") or ()),
    )


@dataclass(frozen=True)
class PlanError:
    """Something the plan cannot do (an impossible placement, an unreachable host):
    the plan exits 1.  `model` is what it is about: a model id, or `host NAME`."""

    model: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "message": self.message}


@dataclass(frozen=True)
class Plan:
    generation: str  # desired fingerprint
    observed: str  # observed fingerprint
    actions: tuple[Action, ...] = ()
    errors: tuple[PlanError, ...] = ()
    # SSH-managed hosts; they run before their neuron's model actions (a restart empties it).
    host_actions: tuple[HostAction, ...] = ()
    warnings: tuple[str, ...] = ()  # e.g. unreachable neurons: the plan may be incomplete
    created_at: float = 0.0
    # auto_apply left these out (daemon only): still pending, shown in conditions.
    withheld: tuple[Step, ...] = field(default=(), compare=False)

    @property
    def has_changes(self) -> bool:
        return bool(self.actions or self.host_actions)

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every action, host actions first (the order apply starts them in)."""
        return (*self.host_actions, *self.actions)

    def counts(self) -> dict[str, int]:
        return {
            "load": sum(a.kind == "load" for a in self.actions),
            "unload": sum(a.kind == "unload" for a in self.actions),
            "change": sum(a.kind == "reload" for a in self.actions),
            "restart": sum(a.kind == "restart" for a in self.actions),
            "host": len(self.host_actions),
            "errors": len(self.errors),
        }

    def action(self, action_id: str) -> Action:
        return next(a for a in self.actions if a.id == action_id)

    def host_actions_on(self, neuron: str) -> tuple[HostAction, ...]:
        return tuple(a for a in self.host_actions if a.neuron == neuron)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "generation": self.generation,
            "observed": self.observed,
            "created_at": self.created_at,
            "summary": self.counts(),
            "actions": [a.to_json() for a in self.actions],
            "host_actions": [a.to_json() for a in self.host_actions],
            "errors": [e.to_json() for e in self.errors],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Any) -> Plan:
        if not isinstance(data, Mapping) or data.get("format") != PLAN_FORMAT:
            raise PlanFileError(f"not a helexa plan (format {PLAN_FORMAT} expected)")
        try:
            return cls(
                generation=str(data["generation"]),
                observed=str(data["observed"]),
                created_at=float(data.get("created_at") or 0.0),
                actions=tuple(Action.from_json(a) for a in data["actions"]),
                host_actions=tuple(
                    host_action_from_json(a) for a in data.get("host_actions") or ()
                ),
                errors=tuple(PlanError(str(e["model"]), str(e["message"])) for e in data["errors"]),
                warnings=tuple(str(w) for w in data.get("warnings") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanFileError(f"malformed plan: {exc!r}") from exc
