"""The reconcile daemon inside `helexa serve`, wired to the gateway's state and metrics.

The daemon shares the gateway's FleetState, poller, neuron client and action
locks; a new good config is handed to the gateway (`set_config`), a rejected
one is shown by it (`config_error`), and each finished round feeds
`cortex_reconcile_runs_total{result}` and `cortex_reconcile_pending_actions`.
All through the daemon's own callbacks: neither side imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping

from helexa.errors import ConfigErrors
from helexa.gateway.core import Gateway
from helexa.reconcile.daemon import ReconcileDaemon
from helexa.reconcile.hosts import HostAccess
from helexa.reconcile.plan import Action
from helexa.reconcile.report import ProgressEvent
from helexa.serve.supervisor import Supervisor


class LocalRestarts:
    """The daemon's defrag restarts of `helexa serve`'s local neurons, by their supervisors."""

    def __init__(self, gateway: Gateway, supervisors: Mapping[str, Supervisor]) -> None:
        self.gateway = gateway
        # The caller's mapping itself: local neurons added later are restartable too.
        self.supervisors = supervisors

    def can_restart(self, neuron: str) -> bool:
        return neuron in self.supervisors

    async def restart(self, neuron: str) -> None:
        fleet, metrics = self.gateway.fleet, self.gateway.metrics
        observed = fleet.neurons.get(neuron)
        for loc in list(observed.models.values()) if observed else []:
            metrics.evictions.labels(loc.model_id, neuron, "defrag").inc()
        await self.supervisors[neuron].restart()
        if observed is not None:
            observed.record_restart()  # not a place to route to until it answers again


def start_reconcile(
    gateway: Gateway,
    hosts: HostAccess | None = None,
    supervisors: Mapping[str, Supervisor] | None = None,
) -> ReconcileDaemon:
    config = gateway.config

    def on_config_error(errors: ConfigErrors) -> None:
        gateway.config_error = str(errors)

    def on_progress(event: ProgressEvent) -> None:
        action = event.action
        # cortex_evictions_total{reason="keep_alive"}: an idle model the daemon unloaded.
        if event.phase == "done" and isinstance(action, Action) and action.cause == "keep_alive":
            gateway.metrics.evictions.labels(action.model, action.neuron, "keep_alive").inc()

    def on_round(daemon: ReconcileDaemon) -> None:
        if daemon.config_error is None:
            gateway.config_error = None
        gateway.metrics.reconcile_runs.labels(round_result(daemon)).inc()
        gateway.metrics.reconcile_pending.set(pending_actions(daemon))

    daemon = ReconcileDaemon(
        config.fleet_path,
        config.models_path,
        gateway.fleet,
        gateway.poller,
        gateway.client,
        config=config,
        on_config=gateway.set_config,
        on_config_error=on_config_error,
        on_round=on_round,
        progress=on_progress,
        # One evict/load at a time per neuron, whether the daemon or a cold load asks.
        neuron_locks=gateway.action_locks,
        hosts=hosts,  # SSH access to managed hosts (`helexa serve` has it unless --skip-hosts)
        restarts=LocalRestarts(gateway, supervisors if supervisors is not None else {}),
    )
    gateway.reconcile = daemon
    gateway.background(daemon.run(), "reconcile")
    return daemon


def round_result(daemon: ReconcileDaemon) -> str:
    if daemon.config_error is not None:
        return "config_error"
    if daemon.last_report is not None and not daemon.last_report.ok:
        return "failed"
    return "ok"


def pending_actions(daemon: ReconcileDaemon) -> int:
    """Actions the last round left undone: withheld, or run and failed."""
    plan, report = daemon.last_plan, daemon.last_report
    if plan is None:
        return 0
    failed = sum(1 for r in report.results if not r.succeeded) if report else 0
    return len(plan.withheld) + failed
