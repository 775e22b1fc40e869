"""Routing steps 2-4 with I/O: serve, wait for a load, or place and cold-load.

Concurrent requests for one model join one load (single-flight per model);
evict+load on one neuron is serialized by the fleet's per-neuron action lock
(shared with the reconciler), so two models placed on the same neuron never
both count the same free memory.
Every decision is logged as one grep-friendly line, recorded in FleetState
and counted in metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Mapping

from helexa.config import Config, ModelSpec, NeuronEntry
from helexa.errors import APIError, ModelNotFound, NoFeasibleNeuron, UpstreamTimeout
from helexa.fleet import placement
from helexa.fleet.decisions import log_decision
from helexa.fleet.locks import NeuronActionLocks
from helexa.fleet.neuron_client import NeuronClient
from helexa.fleet.poller import FleetPoller
from helexa.fleet.state import DecisionKind, FleetState, ModelLocation
from helexa.fleet.weights import local_weights_bytes
from helexa.gateway import router
from helexa.gateway.metrics import GatewayMetrics

log = logging.getLogger("helexa.fleet.decisions")

__all__ = ["ColdLoader", "log_decision"]

# Placement may be overtaken by another load between planning and locking.
MAX_PLACE_ATTEMPTS = 3


class ColdLoader:
    """Gets a model servable somewhere, loading it when nobody holds it."""

    def __init__(
        self,
        fleet: FleetState,
        poller: FleetPoller,
        client: NeuronClient,
        desired: Callable[[], Config],
        metrics: GatewayMetrics,
        locks: NeuronActionLocks,
        started: asyncio.Event | None = None,
    ) -> None:
        self.fleet = fleet
        self.started = started
        self.poller = poller
        self.client = client
        self.desired = desired
        self.metrics = metrics
        self.locks = locks
        self._loads: dict[str, asyncio.Task[None]] = {}
        self.loads_started = 0  # cold loads this gateway issued (tests, bench)

    async def servable(self, model_id: str, within: float) -> list[ModelLocation]:
        """Candidates to send a request to, loading the model first if needed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        if self.started is not None and not self.started.is_set():
            # Start-up: the local neurons have not answered yet; hold instead of a 503.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.started.wait(), within)
        while True:
            route = router.route(model_id, self.fleet)
            if route.action == "serve":
                return list(route.candidates)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UpstreamTimeout(f"{model_id} did not become servable within {within:g}s")
            if route.action == "wait":
                await self.poller.changes.wait_for(
                    lambda: router.route(model_id, self.fleet).action != "wait", remaining
                )
                continue
            spec = self.desired().models.get(model_id)
            if spec is None:
                raise ModelNotFound(f"{model_id} is not loaded anywhere and not in models.toml")
            await asyncio.wait_for(self.load(spec), remaining)
            if not router.choose_replica(model_id, self.fleet):
                # The load answered but the neuron no longer holds it (evicted, or died).
                await self.poller.changes.wait_for(
                    lambda: bool(router.choose_replica(model_id, self.fleet)), 1.0
                )

    async def load(self, spec: ModelSpec) -> None:
        """Load one more copy of `spec`; concurrent callers for one model share the load."""
        task = self._loads.get(spec.id)
        if task is None:
            task = asyncio.create_task(self._place_and_load(spec), name=f"load {spec.id}")
            self._loads[spec.id] = task
            task.add_done_callback(lambda _t: self._loads.pop(spec.id, None))
        # shield: one impatient client must not cancel the load the others wait on.
        await asyncio.shield(task)

    async def unload(self, neuron: str, model_id: str, kind: DecisionKind, reason: str) -> None:
        """Unload under the neuron's lock (so it never races a load there)."""
        entry = self._entry(neuron)
        async with self.locks(neuron):
            log_decision(self.fleet, kind, model_id, neuron, reason)
            self.metrics.evictions.labels(model_id, neuron, kind).inc()
            await self.client.unload(entry, model_id)
            await self.poller.poll_neuron(neuron)

    async def _place_and_load(self, spec: ModelSpec) -> None:
        for _ in range(MAX_PLACE_ATTEMPTS):
            decision = await self._place_fresh(spec)
            async with self.locks(decision.neuron):
                # Re-read the neuron under its lock: an earlier load may have used the room.
                await self.poller.poll_neuron(decision.neuron)
                fresh = self._place(spec)
                if fresh.neuron != decision.neuron:
                    continue
                await self._evict_and_load(spec, fresh)
                return
        raise NoFeasibleNeuron(f"placement of {spec.id} kept changing; try again")

    async def _place_fresh(self, spec: ModelSpec) -> placement.PlacementDecision:
        """`_place`, after re-polling the busy neurons when only busy copies stood in the way:
        a neuron counts a request in flight a moment after its last byte reached us, so a
        poll in that moment says busy what is idle now."""
        decision = self._placement(spec)
        busy = [n.name for n in self.fleet.healthy_neurons() if n.managed and not n.is_idle()]
        if isinstance(decision, placement.NoPlacement) and decision.retryable and busy:
            await asyncio.gather(*(self.poller.poll_neuron(name) for name in busy))
        return self._place(spec)

    def _placement(self, spec: ModelSpec) -> placement.PlacementDecision | placement.NoPlacement:
        config = self.desired()
        specs: Mapping[str, ModelSpec] = {m.id: m for m in config.models.models}
        return placement.place(
            spec,
            self.fleet,
            specs,
            config.fleet.eviction.strategy,
            now=time.time(),
            weights_bytes=local_weights_bytes(spec),
        )

    def _place(self, spec: ModelSpec) -> placement.PlacementDecision:
        decision = self._placement(spec)
        if isinstance(decision, placement.NoPlacement):
            log_decision(self.fleet, "no_placement", spec.id, None, decision.reason)
            self.metrics.cold_loads.labels(spec.id, "", "no_placement").inc()
            raise decision.to_error()
        return decision

    async def _evict_and_load(self, spec: ModelSpec, decision: placement.PlacementDecision) -> None:
        neuron = decision.neuron
        entry = self._entry(neuron)
        state = self.fleet.neurons[neuron]
        for victim in decision.evict:
            if placement.fits_on(spec, state, decision.footprint.memory_mb):
                break  # the earlier unloads freed more than estimated
            log_decision(self.fleet, "evict", victim, neuron, f"make room for {spec.id}")
            self.metrics.evictions.labels(victim, neuron, "make_room").inc()
            await self.client.unload(entry, victim)
            state = await self.poller.poll_neuron(neuron)  # free memory, re-read
        log_decision(self.fleet, "load", spec.id, neuron, decision.reason)
        self.loads_started += 1
        started = time.monotonic()
        try:
            await self.client.load(entry, spec.load_request())
        except APIError as exc:
            self.metrics.cold_loads.labels(spec.id, neuron, exc.code).inc()
            log.warning("load of %s on %s failed: %s", spec.id, neuron, exc.message)
            await self.poller.poll_neuron(neuron)
            raise public_load_error(spec.id, neuron, exc) from exc
        self.metrics.cold_loads.labels(spec.id, neuron, "ok").inc()
        self.metrics.model_load_seconds.labels(spec.id, neuron).observe(time.monotonic() - started)
        await self.poller.poll_neuron(neuron)

    def _entry(self, neuron: str) -> NeuronEntry:
        entry = self.desired().fleet.neuron(neuron)
        if entry is None:
            raise NoFeasibleNeuron(f"neuron {neuron} is no longer in fleet.toml")
        return entry


def public_load_error(model_id: str, neuron: str, error: APIError) -> APIError:
    """The neuron's load error for an API client: same status and code, but not its text
    (it names host paths and values from the model's files); the log keeps that."""
    public = copy.copy(error)
    public.message = (
        f"loading {model_id} on neuron {neuron} failed ({error.code}); "
        "the gateway's log and /admin/fleet have the details"
    )
    public.args = (public.message,)
    return public
