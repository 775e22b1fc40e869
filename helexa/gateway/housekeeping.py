"""Periodic fleet care: idle unloads, defrag restarts, and pinned models kept loaded.

The decisions are placement's (pure); this loop carries them out through the
cold loader (so they serialize with request-driven loads on each neuron).
Keeping pinned models loaded belongs to the reconciler; until it runs inside
`helexa serve`, the gateway loads pinned models that have fewer copies than
`replicas` once some neuron is healthy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from helexa.errors import APIError
from helexa.fleet import placement
from helexa.fleet.decisions import log_decision
from helexa.gateway.core import Gateway
from helexa.serve.supervisor import Supervisor

log = logging.getLogger("helexa.gateway.housekeeping")


class Housekeeping:
    """One `tick()` does every chore once; `run()` ticks every `interval` seconds."""

    def __init__(
        self,
        gateway: Gateway,
        supervisors: Mapping[str, Supervisor] | None = None,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        load_pinned: bool = True,
    ) -> None:
        self.gateway = gateway
        # The caller's mapping itself: local neurons added later are restarted too.
        self.supervisors: Mapping[str, Supervisor] = supervisors if supervisors is not None else {}
        self.interval = interval
        self.clock = clock
        self.load_pinned = load_pinned
        self._defrag_reported: set[str] = set()

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        await self.unload_idle()
        await self.defrag()
        if self.load_pinned:
            await self.ensure_pinned()

    async def unload_idle(self) -> None:
        gw = self.gateway
        specs = {m.id: m for m in gw.config.models.models}
        due = placement.idle_unloads(
            gw.fleet, specs, gw.config.fleet.eviction.keep_alive, self.clock()
        )
        for unload in due:
            try:
                await gw.loader.unload(unload.neuron, unload.model_id, "keep_alive", unload.reason)
            except APIError as exc:
                log.warning(
                    "idle unload of %s on %s failed: %s",
                    unload.model_id,
                    unload.neuron,
                    exc.message,
                )

    async def defrag(self) -> None:
        gw = self.gateway
        threshold = gw.config.fleet.eviction.defrag_after_cycles
        due = placement.defrag_due(gw.fleet, threshold)
        managed = {e.name for e in gw.config.fleet.neurons if e.managed}
        requested: dict[str, str] = {}
        for name in due:
            cycles = gw.fleet.neurons[name].cycles
            reason = f"{cycles} load/unload cycles >= defrag_after_cycles {threshold}, idle"
            supervisor = self.supervisors.get(name)
            if supervisor is None:
                if name in managed and gw.reconcile is not None:
                    # SSH-managed: the reconciler's restart host action (per auto_apply).
                    requested[name] = "defrag: " + reason
                    how = "; restart planned by the reconciler"
                else:
                    how = "; restart it (not local)"
                if name not in self._defrag_reported:  # say it once, not every tick
                    log_decision(gw.fleet, "defrag", "*", name, reason + how)
                    self._defrag_reported.add(name)
                continue
            async with gw.action_locks(name):
                log_decision(gw.fleet, "defrag", "*", name, reason + "; restarting")
                for loc in list(gw.fleet.neurons[name].models.values()):
                    gw.metrics.evictions.labels(loc.model_id, name, "defrag").inc()
                await supervisor.restart()
                # Until it answers again it is not a place to route to.
                gw.fleet.neurons[name].healthy = False
                gw.fleet.neurons[name].models.clear()
        self._defrag_reported &= set(due)  # due again after a restart: said again
        if gw.reconcile is not None:
            gw.reconcile.request_restarts(requested)

    async def ensure_pinned(self) -> None:
        gw = self.gateway
        if not gw.fleet.healthy_neurons():
            return
        for spec in gw.config.models.models:
            if not spec.pin:
                continue
            copies = [
                loc
                for loc in gw.fleet.locations(spec.id)
                if loc.state in ("loading", "loaded") and gw.fleet.neurons[loc.neuron].healthy
            ]
            if len(copies) >= spec.replicas:
                continue
            try:
                await gw.loader.load(spec)
            except APIError as exc:
                log.warning(
                    "pinned %s has %d/%d copies; load failed: %s",
                    spec.id,
                    len(copies),
                    spec.replicas,
                    exc.message,
                )
