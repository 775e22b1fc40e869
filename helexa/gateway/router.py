"""Routing steps 1-4 (docs/gateway.md, routing) as pure functions over FleetState.

1. resolve the client's name (models.toml id, alias, pattern, or an id some
   neuron holds that models.toml does not know);
2. serve from a loaded copy on a healthy neuron, least busy first;
3. else wait for a load in progress;
4. else place it (helexa.fleet.placement) and cold-load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from helexa.config.models import ModelsConfig, ModelSpec
from helexa.errors import ModelNotFound
from helexa.fleet.state import FleetState, ModelLocation

RouteAction = Literal["serve", "wait", "place"]


@dataclass(frozen=True)
class ResolvedModel:
    requested: str  # what the client sent
    model_id: str  # what neurons call it
    spec: ModelSpec | None  # None: not in models.toml (a stray or a foreign server's model)


@dataclass(frozen=True)
class RoutingHint:
    """What a request says about where it would best run.

    `session_key` names the conversation a request belongs to (the Responses
    API's `prompt_cache_key`; Codex sends its session id): the turns of one
    conversation share a growing prefix, so a prefix cache would want them on
    the same replica. It is carried to `choose_replica` but does not change
    the order yet (docs/gateway.md, "Routing hints")."""

    session_key: str | None = None


NO_HINT = RoutingHint()


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
    model_id: str, fleet: FleetState, hint: RoutingHint = NO_HINT
) -> list[ModelLocation]:
    """Loaded copies on healthy neurons: least busy first, ties by neuron name
    (`hint` is not used for the order yet: RoutingHint says why it is here)."""
    copies = [
        n.models[model_id]
        for n in fleet.neurons.values()
        if n.healthy and model_id in n.models and n.models[model_id].servable
    ]
    if len(copies) > 1:  # one copy, the usual case, needs no sort (per request)
        copies.sort(key=lambda loc: (loc.busy_score, loc.neuron))
    return copies


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
