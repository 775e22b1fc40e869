"""Operator routes: /health (public), /admin/fleet, manual load/unload."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa.config import NeuronEntry
from helexa.config.models import ModelSpec
from helexa.errors import APIError, BadRequest, ModelNotFound, NoFeasibleNeuron
from helexa.fleet.decisions import log_decision
from helexa.fleet.state import ModelLocation
from helexa.gateway import router
from helexa.gateway.core import Gateway, gateway_of
from helexa.gateway.dispatch import openai_error
from helexa.limits import parse_json_object


async def health(request: Request) -> Response:
    return JSONResponse(gateway_of(request).health())


async def fleet(request: Request) -> Response:
    return JSONResponse(fleet_json(gateway_of(request)))


def _engine(spec: ModelSpec | None, locations: list[ModelLocation]) -> str:
    """Who runs the model: models.toml says; for a model it does not list, the neuron does."""
    if spec is not None:
        return spec.engine
    return locations[0].engine if locations else "transformers"


def fleet_json(gw: Gateway) -> dict[str, Any]:
    """The observed state, plus per-model rows (desired flags + where it is) for status."""
    out = gw.fleet.to_json()
    specs = {m.id: m for m in gw.config.models.models}
    rows = []
    for model_id in sorted(set(specs) | set(gw.fleet.model_ids())):
        spec = specs.get(model_id)
        rows.append(
            {
                "id": model_id,
                "pinned": bool(spec and spec.pin),
                "replicas": spec.replicas if spec else None,
                "in_models_toml": spec is not None,
                "engine": _engine(spec, gw.fleet.locations(model_id)),
                "locations": [
                    {
                        "neuron": loc.neuron,
                        "state": loc.state,
                        "in_flight": loc.active,  # as polled, plus this gateway's since
                        "queued": loc.queued,
                        "memory_mb": loc.memory_mb,
                        "engine": loc.engine,
                        "progress": loc.progress,
                    }
                    for loc in gw.fleet.locations(model_id)
                ],
            }
        )
    out["models"] = rows
    out["prefix_cache"] = gw.metrics.prefix_cache()
    out["health"] = gw.health()
    out["reconcile"] = gw.reconcile.to_json() if gw.reconcile is not None else None
    out["config"] = {
        "fleet": str(gw.config.fleet_path),
        "models": str(gw.config.models_path),
        "error": gw.config_error,
    }
    return out


async def load(request: Request) -> Response:
    gw = gateway_of(request)
    try:
        model_id, neuron = await _operation(request)
        spec = gw.config.models.get(model_id)
        if spec is None:
            raise ModelNotFound(f"{model_id} is not in models.toml", param="model")
        if neuron is None:
            await gw.loader.load(spec)
        else:
            entry = _entry(gw, neuron)
            async with gw.action_locks(neuron):
                log_decision(gw.fleet, "load", model_id, neuron, "manual load (/admin/models/load)")
                await gw.client.load(entry, spec.load_request())
                await gw.poller.poll_neuron(neuron)
    except APIError as exc:
        return openai_error(exc)
    return JSONResponse({"model": model_id, "locations": _locations(gw, model_id)})


async def unload(request: Request) -> Response:
    gw = gateway_of(request)
    try:
        model_id, neuron = await _operation(request)
        holders = [loc.neuron for loc in gw.fleet.locations(model_id)]
        targets = [neuron] if neuron is not None else holders
        if not targets:
            raise ModelNotFound(f"{model_id} is not loaded anywhere", param="model")
        for name in targets:
            _entry(gw, name)
            await gw.loader.unload(name, model_id, "unload", "manual unload (/admin/models/unload)")
    except APIError as exc:
        return openai_error(exc)
    return JSONResponse({"model": model_id, "locations": _locations(gw, model_id)})


async def _operation(request: Request) -> tuple[str, str | None]:
    gw = gateway_of(request)
    body = await parse_json_object(await request.body())
    name, neuron = body.get("model"), body.get("neuron")
    if not isinstance(name, str) or not name:
        raise BadRequest("`model` is required", param="model")
    if neuron is not None and not isinstance(neuron, str):
        raise BadRequest("`neuron` must be a string", param="neuron")
    resolved = router.resolve_or_raise(name, gw.config.models, gw.fleet)
    return resolved.model_id, neuron


def _entry(gw: Gateway, neuron: str) -> NeuronEntry:
    entry = gw.neuron_entry(neuron)
    if entry is None:
        raise BadRequest(f"no neuron named {neuron!r} in fleet.toml", param="neuron")
    if entry.kind != "neuron":
        raise NoFeasibleNeuron(f"{neuron} is kind={entry.kind}: helexa does not load models there")
    return entry


def _locations(gw: Gateway, model_id: str) -> list[dict[str, str]]:
    return [{"neuron": loc.neuron, "state": loc.state} for loc in gw.fleet.locations(model_id)]


ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/admin/fleet", fleet, methods=["GET"]),
    Route("/admin/models/load", load, methods=["POST"]),
    Route("/admin/models/unload", unload, methods=["POST"]),
]
