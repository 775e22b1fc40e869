"""Routing steps 1-4 (docs/gateway.md, routing) as pure functions over FleetState.

1. resolve the client's name (models.toml id, alias, pattern, or an id some
   neuron holds that models.toml does not know);
2. serve from a loaded copy on a healthy neuron: where the request's prefix
   most likely is cached (helexa.gateway.affinity) within a load bound, else
   least busy first;
3. else wait for a load in progress;
4. else place it (helexa.fleet.placement) and cold-load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from helexa.config.models import ModelsConfig, ModelSpec
from helexa.errors import ModelNotFound
from helexa.fleet.state import FleetState, ModelLocation
from helexa.gateway.affinity import AffinityKey, body_prefix_key, choose, first_string, session_key

RouteAction = Literal["serve", "wait", "place"]


@dataclass(frozen=True)
class ResolvedModel:
    requested: str  # what the client sent
    model_id: str  # what neurons call it
    spec: ModelSpec | None  # None: not in models.toml (a stray or a foreign server's model)


@dataclass(frozen=True)
class RoutingHint:
    """What a request says about where it would best run.

    `session_key` names the conversation a request belongs to (OpenAI's
    `prompt_cache_key` or `user`, Anthropic's `metadata.user_id`; Codex sends
    its session id); else the prefix of `body` (the OpenAI body sent upstream)
    names it: what every turn of a conversation shares (helexa.gateway.affinity).
    The turns of one conversation share a growing prefix, so the neuron's
    prefix cache wants them on one replica. The prefix is hashed only when
    there are replicas to choose between (most requests have one)."""

    session_key: str | None = None
    model_id: str = ""
    body: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def affinity(self) -> AffinityKey | None:
        """The ring key: the explicit session key first, else the body's prefix."""
        if self.session_key:
            return session_key(self.session_key)
        if self.body is not None:
            return body_prefix_key(self.model_id, self.body)
        return None


NO_HINT = RoutingHint()


def upstream_hint(session: object, model_id: str, upstream_body: Mapping[str, Any]) -> RoutingHint:
    """The hint of a request: its explicit session key (`session`, the dialect's
    field: OpenAI `prompt_cache_key` / `user`, Anthropic `metadata.user_id`), else
    the prefix of the OpenAI body sent upstream (every dialect becomes one, so the
    same conversation hashes alike whichever dialect it came in)."""
    key = first_string(session)
    if key is not None:
        return RoutingHint(session_key=key)
    return RoutingHint(model_id=model_id, body=upstream_body)


def openai_hint(model_id: str, body: Mapping[str, Any]) -> RoutingHint:
    """/v1/chat/completions and /v1/completions: `prompt_cache_key`, then `user`."""
    session = first_string(body.get("prompt_cache_key"), body.get("user"))
    return upstream_hint(session, model_id, body)


RoutingMode = Literal["prefix_affinity", "least_busy"]


@dataclass(frozen=True)
class RoutingPolicy:
    """`[gateway] routing` and `affinity_slack` (docs/gateway.md, routing)."""

    mode: RoutingMode = "prefix_affinity"
    slack: float = 0.25


DEFAULT_POLICY = RoutingPolicy()


@dataclass(frozen=True)
class ReplicaChoice:
    candidates: list[ModelLocation]  # try in this order
    reason: str | None  # why the first: None when there was nothing to choose between


@dataclass(frozen=True)
class Route:
    action: RouteAction
    candidates: tuple[ModelLocation, ...] = ()  # "serve": try in this order
    loading_on: tuple[str, ...] = ()  # "wait": neurons loading it now


def resolve(name: str, models: ModelsConfig, fleet: FleetState) -> ResolvedModel | None:
    """What `name` means, or None (-> 404).

    Order: a models.toml id; an exact id some neuron holds (so a pattern alias
    like "claude-*" cannot shadow a model actually served under that name);
    then aliases, exact before patterns, most specific pattern first.
    """
    spec = models.get(name)
    if spec is not None:
        return ResolvedModel(name, spec.id, spec)
    if _held(name, fleet):
        return ResolvedModel(name, name, None)
    target = models.alias_target(name)
    if target is None:
        return None
    spec = models.get(target)
    if spec is not None or _held(target, fleet):
        return ResolvedModel(name, target, spec)
    return None


def _held(model_id: str, fleet: FleetState) -> bool:
    """Some neuron serves or is loading it (a failed load is no reason to route there)."""
    for neuron in fleet.neurons.values():
        loc = neuron.models.get(model_id)
        if loc is not None and loc.state in ("loading", "loaded"):
            return True
    return False


def resolve_or_raise(name: str, models: ModelsConfig, fleet: FleetState) -> ResolvedModel:
    resolved = resolve(name, models, fleet)
    if resolved is None:
        raise unmapped_model(name, models)
    return resolved


def unmapped_model(name: str, models: ModelsConfig) -> ModelNotFound:
    """The 404 for a name nothing serves, saying how to map it (Claude Code and other
    clients hard-code names such as claude-* that the operator never wrote down)."""
    target = models.models[0].id if models.models else "<model id>"
    pattern = "claude-*" if name.startswith("claude-") else name
    return ModelNotFound(
        f"The model '{name}' does not exist. To serve it, map it to a model in models.toml: "
        f'[aliases] "{pattern}" = "{target}" (`*` matches any run of characters)',
        param="model",
    )


def choose_replica(
    model_id: str,
    fleet: FleetState,
    hint: RoutingHint = NO_HINT,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> list[ModelLocation]:
    """Loaded copies on healthy neurons in the order to try them (choose_replica_explained)."""
    return choose_replica_explained(model_id, fleet, hint, policy).candidates


def choose_replica_explained(
    model_id: str,
    fleet: FleetState,
    hint: RoutingHint = NO_HINT,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> ReplicaChoice:
    """Loaded copies on healthy neurons, in the order to try them, and why.

    With several copies and an affinity key (prefix_affinity routing): the
    copy the key's ring walk picks within the load bound first; the rest (the
    failover order) least busy first, ties by neuron name. Without a key, or
    with `routing = "least_busy"`: least busy first."""
    copies = [
        n.models[model_id]
        for n in fleet.neurons.values()
        if n.healthy and model_id in n.models and n.models[model_id].servable
    ]
    if len(copies) <= 1:  # one copy, the usual case, needs no sort (per request)
        return ReplicaChoice(copies, None)
    copies.sort(key=lambda loc: (loc.busy_score, loc.neuron))
    key = hint.affinity
    if key is None or policy.mode == "least_busy":
        if policy.mode == "prefix_affinity":
            why = "no affinity key"
        else:  # the key still shows which conversation went where
            why = "routing = least_busy" + (f"; {key.kind} key={key.digest[:8]}" if key else "")
        return ReplicaChoice(copies, f"least busy {copies[0].neuron} ({why})")
    loads = {loc.neuron: loc.active + loc.queued for loc in copies}
    slots = {loc.neuron: loc.max_in_flight for loc in copies}
    choice = choose(key, loads, policy.slack, slots)
    first = next(loc for loc in copies if loc.neuron == choice.target)
    return ReplicaChoice([first, *(loc for loc in copies if loc is not first)], choice.reason)


def loading_on(model_id: str, fleet: FleetState) -> list[str]:
    """Healthy neurons loading `model_id` right now, by name."""
    return sorted(
        n.name
        for n in fleet.neurons.values()
        if n.healthy and model_id in n.models and n.models[model_id].state == "loading"
    )


def is_loading_somewhere(model_id: str, fleet: FleetState) -> bool:
    return bool(loading_on(model_id, fleet))


def route(model_id: str, fleet: FleetState) -> Route:
    """Serve, wait for a load in progress, or place: steps 2-4, in that order."""
    candidates = choose_replica(model_id, fleet)
    if candidates:
        return Route("serve", candidates=tuple(candidates))
    loading = loading_on(model_id, fleet)
    if loading:
        return Route("wait", loading_on=tuple(loading))
    return Route("place")
