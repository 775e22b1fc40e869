"""`helexa plan` / `helexa apply` without a gateway: poll the neurons once, then diff.

The CLI builds its own FleetState with the gateway's poller (same code, one
round), so a one-shot plan sees exactly what a running gateway would.  Given
`HostAccess`, SSH-managed hosts are observed too: their actions join the plan, and
the model diff is made against the fleet as it will be after their restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

import aiohttp

from helexa.config import Config
from helexa.fleet.neuron_client import NeuronClient
from helexa.fleet.poller import FleetPoller, PollSettings
from helexa.fleet.state import FleetState
from helexa.reconcile.desired import DesiredState, load_desired
from helexa.reconcile.diff import diff
from helexa.reconcile.hosts import (
    HostAccess,
    HostRunner,
    after_restarts,
    observe_hosts,
    with_hosts,
)
from helexa.reconcile.observed import ObservedState, observe
from helexa.reconcile.plan import Plan

SessionFactory = Callable[[], aiohttp.ClientSession]


class OneShot:
    """A poller and a neuron client for one CLI run; `async with OneShot(config) as run:`."""

    def __init__(
        self,
        config: Config,
        *,
        session_factory: SessionFactory = aiohttp.ClientSession,
        hosts: HostAccess | None = None,
    ) -> None:
        gateway = config.fleet.gateway
        self.config = config
        self.desired: DesiredState = load_desired(config)
        self.fleet = FleetState()
        # One failed poll is enough to call a neuron unreachable: there is no next round.
        settings = PollSettings(timeout=gateway.connect_timeout, failure_threshold=1)
        self.poller = FleetPoller(
            self.fleet, config.fleet.neurons, settings, session_factory=session_factory
        )
        self.client = NeuronClient(
            session_factory,
            connect_timeout=gateway.connect_timeout,
            load_timeout=gateway.load_timeout,
        )
        self.host_access = hosts
        self.hosts = HostRunner(hosts, self.desired.neurons) if hosts is not None else None

    async def observe(self) -> ObservedState:
        await self.poller.poll_once()
        return observe(self.fleet)

    async def plan(self) -> Plan:
        observed = await self.observe()
        if self.host_access is None:
            return diff(self.desired, observed, now=time.time())
        hosts = await observe_hosts(self.desired.neurons.values(), self.host_access)
        plan = diff(self.desired, after_restarts(observed, hosts), now=time.time())
        return with_hosts(plan, observed, hosts)

    async def __aenter__(self) -> OneShot:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.poller.close()
        await self.client.close()
