"""The reconcile daemon inside `helexa serve`: level-triggered, file-watching, backing off.

Each round re-reads both files (a broken file changes nothing: the last good
desired state stays and ConfigValid says file:line), polls the fleet through the
gateway's own poller, diffs, and applies what `[reconcile].auto_apply` allows
under the single-writer lock.  Rounds run on a save of fleet.toml/models.toml
(the directory is watched, since editors save by rename; the burst of events
is debounced) and every `interval` regardless, so a neuron that restarts empty
gets its pinned models back within one interval, and at once when the poller
saw it go down and come back up.  The daemon writes no files
it watches (the lock lives next to them under another name), and the watcher
sees only those two files (not a log file next to them), so it cannot trigger
itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from helexa.config import Config, load_config
from helexa.deploy.hostplan import HostAction
from helexa.errors import ConfigErrors
from helexa.fleet import placement
from helexa.fleet.state import FleetState, ObservedNeuron
from helexa.reconcile.apply import (
    Applier,
    FleetRefresh,
    NeuronControl,
    NeuronLocks,
    NeuronRestarts,
    Progress,
)
from helexa.reconcile.backoff import Backoff
from helexa.reconcile.conditions import Conditions
from helexa.reconcile.desired import DesiredState, load_desired
from helexa.reconcile.diff import diff
from helexa.reconcile.hosts import (
    HostAccess,
    HostRunner,
    after_restarts,
    observe_hosts,
    with_hosts,
    with_requested_restarts,
)
from helexa.reconcile.lock import LockHeld, WriterLock, lock_path_for
from helexa.reconcile.observed import observe
from helexa.reconcile.plan import UPKEEP_CAUSES, Action, Plan, Step
from helexa.reconcile.report import ApplyReport

log = logging.getLogger("helexa.reconcile.daemon")

DEBOUNCE_S = 0.2
WATCH_STOP_S = 5.0  # the watcher checks its stop event every `step` (20 ms)


class FleetPoll(FleetRefresh, Protocol):
    """The gateway's FleetPoller: one neuron now, a whole round, and per-poll listeners."""

    listeners: list[Callable[[ObservedNeuron], None]]

    async def poll_once(self) -> None: ...


def auto_applicable(action: Step, auto_apply: str) -> bool:
    """Whether the daemon may run `action` by itself: host actions (SSH) need "all";
    upkeep (idle unloads, a local neuron's defrag restart) always runs, as keep_alive
    and defrag_after_cycles ask, whatever auto_apply says."""
    if isinstance(action, HostAction):
        return auto_apply == "all"
    return auto_apply in ("models", "all") or action.cause in UPKEEP_CAUSES


def backoff_key(action: Step) -> tuple[str, str, str]:
    """Model actions back off one by one; a host's actions together (they run as one)."""
    if isinstance(action, HostAction):
        return ("host", action.neuron, "")
    return action.key


class ReconcileDaemon:
    def __init__(
        self,
        fleet_path: Path,
        models_path: Path,
        fleet: FleetState,
        poller: FleetPoll,
        control: NeuronControl,
        *,
        config: Config | None = None,
        on_config: Callable[[Config], None] | None = None,
        on_config_error: Callable[[ConfigErrors], None] | None = None,
        on_round: Callable[[ReconcileDaemon], None] | None = None,
        progress: Progress | None = None,
        debounce_s: float = DEBOUNCE_S,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        neuron_locks: NeuronLocks | None = None,
        hosts: HostAccess | None = None,
        restarts: NeuronRestarts | None = None,
    ) -> None:
        self.fleet_path = fleet_path.absolute()
        self.models_path = models_path.absolute()
        self.fleet = fleet
        self.poller = poller
        self.control = control
        self.config = config  # the last good config
        self.on_config = on_config or (lambda _config: None)
        self.on_config_error = on_config_error or (lambda _errors: None)
        # After every round (e.g. metrics: runs by Converged reason, pending actions).
        self.on_round = on_round or (lambda _daemon: None)
        self.progress = progress
        self.debounce_s = debounce_s
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.neuron_locks = neuron_locks  # shared with the gateway's cold loads
        # SSH access to managed hosts: their host actions are planned (applied with "all").
        self.hosts = hosts
        # The neurons this process can restart itself (defrag of `helexa serve`'s locals).
        self.restarts = restarts
        # Restarts asked for by name (an SSH-managed neuron's defrag): neuron -> why.
        self.requested_restarts: dict[str, str] = {}
        self.conditions = Conditions(clock)
        self.config_error: ConfigErrors | None = None
        self.restart_required: str | None = None
        self.last_plan: Plan | None = None
        self.last_report: ApplyReport | None = None
        self.rounds = 0  # completed rounds (tests and bench wait on it)
        self.in_round = False
        self.round_done = asyncio.Event()
        self._listen = _listen_addresses(config) if config else None
        self._kick = asyncio.Event()
        self._watch_stop = asyncio.Event()
        # A neuron coming (back) up starts a round at once: a restarted neuron is empty.
        self._healthy: dict[str, bool] = {}
        poller.listeners.append(self._on_poll)

    @property
    def interval(self) -> float:
        return self.config.fleet.reconcile.interval if self.config else 30.0

    def _on_poll(self, neuron: ObservedNeuron) -> None:
        came_up = neuron.healthy and not self._healthy.get(neuron.name, False)
        self._healthy[neuron.name] = neuron.healthy
        if came_up and neuron.managed:
            log.info("neuron %s is up, reconciling", neuron.name)
            self.trigger()

    def request_restarts(self, requested: dict[str, str]) -> None:
        """The managed neurons that should be restarted (neuron -> why), replacing the last
        request: each is planned as a `restart` host action until one has been done."""
        if requested.keys() - self.requested_restarts.keys():
            self.trigger()
        self.requested_restarts = dict(requested)

    def trigger(self) -> None:
        """Run a round now (a save was seen, or an operator asked)."""
        self._kick.set()

    async def run(self) -> None:
        """Rounds until cancelled: now, on every debounced save, and every `interval`."""
        watcher: asyncio.Task[None] | None = None
        if self.config is None or self.config.fleet.reconcile.watch:
            watcher = asyncio.create_task(self._watch(), name="reconcile-watch")
        try:
            while True:
                self._kick.clear()
                try:
                    await self.reconcile_once()
                except Exception:  # one bad round must not end reconciling for good
                    log.exception("reconcile round failed")
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that
                # arrives as the kick is set, and the daemon would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._kick.wait()
        finally:
            if watcher is not None:
                await _stop_watching(watcher, self._watch_stop)

    async def reconcile_once(self) -> Plan | None:
        """One level-triggered round; returns the plan it made (None without a good config)."""
        self.in_round = True
        try:
            config = await self._read_config()
            if config is None:
                return None
            desired = await asyncio.to_thread(load_desired, config)
            if self.config_error is None:
                self._set_valid(desired.generation)
            await self.poller.poll_once()
            plan = await self._plan(desired)
            self.last_plan = plan
            self._set_reachable(plan, desired.generation)
            await self._apply(plan, desired)
            return plan
        finally:
            self.in_round = False
            self.rounds += 1
            self.round_done.set()
            self.round_done = asyncio.Event()
            try:
                self.on_round(self)
            except Exception:  # a metrics bug must not stop reconciling
                log.exception("on_round listener failed")

    async def _plan(self, desired: DesiredState) -> Plan:
        observed = observe(self.fleet)
        restartable = [n for n in self.fleet.neurons if self._can_restart(n)]
        managed = [e for e in desired.neurons.values() if e.managed]
        if self.hosts is None or not managed:
            return diff(desired, observed, now=self.clock(), restartable=restartable)
        # An SSH-managed neuron due a defrag is restarted by its host's plan.
        by_host = self._defrag_by_host(desired, restartable)
        hosts = with_requested_restarts(
            await observe_hosts(managed, self.hosts), {**self.requested_restarts, **by_host}
        )
        # Against the fleet as it will be after the restarts only when they will happen.
        applies_hosts = desired.reconcile.auto_apply == "all"
        basis = after_restarts(observed, hosts) if applies_hosts else observed
        plan = diff(
            desired,
            basis,
            now=self.clock(),
            restartable=restartable,
            restarted_by_host=by_host.keys(),
        )
        return with_hosts(plan, observed, hosts)

    def _can_restart(self, neuron: str) -> bool:
        return self.restarts is not None and self.restarts.can_restart(neuron)

    def _defrag_by_host(self, desired: DesiredState, restartable: list[str]) -> dict[str, str]:
        threshold = desired.defrag_after_cycles
        ssh = {name for name, entry in desired.neurons.items() if entry.ssh}
        return {
            name: "defrag: " + placement.defrag_reason(self.fleet.neurons[name], threshold)
            for name in placement.defrag_due(self.fleet, threshold)
            if name in ssh and name not in restartable
        }

    def to_json(self) -> dict[str, Any]:
        """The daemon's state for /admin/fleet."""
        now = self.clock()
        return {
            "generation": self.last_plan.generation if self.last_plan else None,
            "conditions": self.conditions.to_json(),
            "config_error": str(self.config_error) if self.config_error else None,
            "restart_required": self.restart_required,
            "pending": [a.to_json() for a in self.pending()],
            "last_plan": self.last_plan.to_json() if self.last_plan else None,
            "errors": [e.to_json() for e in self.last_plan.errors] if self.last_plan else [],
            "backoff": self.backoff.to_json(now),
            "rounds": self.rounds,
            "in_round": self.in_round,
        }

    def pending(self) -> list[Step]:
        """What the last round left undone: withheld, failed, or not attempted."""
        if self.last_plan is None:
            return []
        report = self.last_report
        results = report.results if report else ()
        undone = [r.action for r in results if not r.succeeded]
        # Host actions first (they run first), then plan order.
        return sorted(
            [*self.last_plan.withheld, *undone],
            key=lambda a: (isinstance(a, Action), int(a.id[1:])),
        )

    # --- one round -----------------------------------------------------------------

    async def _read_config(self) -> Config | None:
        try:
            config = await asyncio.to_thread(load_config, self.fleet_path, self.models_path)
        except ConfigErrors as exc:
            if str(exc) != str(self.config_error):
                log.error("config rejected, keeping the last good one:\n%s", exc)
            self.config_error = exc
            self.on_config_error(exc)
            generation = self.last_plan.generation if self.last_plan else None
            self.conditions.set("ConfigValid", False, "Invalid", str(exc), generation)
            return self.config
        if self.config_error is not None:
            log.info("config valid again (%s, %s): using it", self.fleet_path, self.models_path)
        self.config_error = None
        if config != self.config:
            self._adopt(config)
        return config

    def _set_valid(self, generation: str) -> None:
        self.conditions.set(
            "ConfigValid",
            True,
            "RestartRequired" if self.restart_required else "Valid",
            self.restart_required or f"{self.fleet_path} and {self.models_path} are valid",
            generation,
        )

    def _adopt(self, config: Config) -> None:
        """A new good config: the gateway polls and routes by it from now on."""
        listen = _listen_addresses(config)
        if self._listen is None:
            self._listen = listen
        elif listen != self._listen:
            self.restart_required = (
                f"gateway listen addresses changed to {listen[0]} / {listen[1]}: "
                "restart `helexa serve` to use them"
            )
            log.warning("%s", self.restart_required)
        self.config = config
        self.on_config(config)

    def _set_reachable(self, plan: Plan, generation: str) -> None:
        unreachable = [w for w in plan.warnings if "unreachable" in w]
        if unreachable:
            self.conditions.set(
                "NeuronsReachable", False, "Unreachable", "; ".join(unreachable), generation
            )
        else:
            self.conditions.set("NeuronsReachable", True, "AllReachable", "", generation)

    async def _apply(self, plan: Plan, desired: DesiredState) -> None:
        generation = desired.generation
        runnable, withheld = self._runnable(plan, desired.reconcile.auto_apply)
        self.last_plan = replace(plan, withheld=tuple(withheld))
        self.last_report = None  # this round's report only: None when it applied nothing
        report: ApplyReport | None = None
        if runnable:
            for action in runnable:
                if isinstance(action, Action) and action.destructive:
                    log.warning(
                        "destructive: %s %s on %s (%s)",
                        action.kind,
                        action.model,
                        action.neuron,
                        action.reason,
                    )
            try:
                with WriterLock(lock_path_for(self.models_path), "daemon"):
                    applier = Applier(
                        desired,
                        self.poller,
                        self.control,
                        progress=self.progress,
                        neuron_locks=self.neuron_locks,
                        hosts=HostRunner(self.hosts, desired.neurons) if self.hosts else None,
                        restarts=self.restarts,
                    )
                    report = await applier.apply(
                        replace(
                            plan,
                            actions=tuple(a for a in runnable if isinstance(a, Action)),
                            host_actions=tuple(a for a in runnable if isinstance(a, HostAction)),
                        )
                    )
            except LockHeld as exc:
                self.conditions.set("Converged", False, "LockHeld", str(exc), generation)
                return
            self._record(report)
            self.last_report = report
        self.conditions.set("Converged", *self._convergence(plan, withheld, report), generation)

    def _runnable(self, plan: Plan, auto_apply: str) -> tuple[list[Step], list[Step]]:
        """Split the plan into what runs now and what waits (auto_apply, backoff, deps)."""
        now = self.clock()
        runnable: list[Step] = []
        withheld: list[Step] = []
        ids: set[str] = set()
        for action in plan.steps:  # host actions first: model actions may follow them
            if (
                auto_applicable(action, auto_apply)
                and self.backoff.wait_left(backoff_key(action), now) == 0
                and all(dep in ids for dep in action.depends_on)
            ):
                runnable.append(action)
                ids.add(action.id)
            else:
                withheld.append(action)
        return runnable, withheld

    def _record(self, report: ApplyReport) -> None:
        now = self.clock()
        for result in report.results:
            action = result.action
            if result.succeeded:
                self.backoff.succeeded(backoff_key(action))
                if isinstance(action, HostAction) and action.kind == "restart":
                    self.requested_restarts.pop(action.neuron, None)  # done: asked no more
            elif result.status == "failed":
                delay = self.backoff.failed(backoff_key(action), now)
                log.warning(
                    "%s %s on %s failed (retry in %.0fs): %s",
                    action.kind,
                    action.model if isinstance(action, Action) else action.target,
                    action.neuron,
                    delay,
                    result.message,
                )

    @staticmethod
    def _convergence(
        plan: Plan, withheld: list[Step], report: ApplyReport | None
    ) -> tuple[bool, str, str]:
        if plan.errors:
            return False, "PlanErrors", "; ".join(f"{e.model}: {e.message}" for e in plan.errors)
        if report is not None and not report.ok:
            return False, "ApplyFailed", report.summary()
        if withheld:
            return False, "ActionsPending", f"{len(withheld)} action(s) not applied automatically"
        if report is not None:
            return True, "Applied", report.summary()
        return True, "Converged", "the fleet matches models.toml"

    # --- file watch ----------------------------------------------------------------

    async def _watch(self) -> None:
        from watchfiles import awatch

        watched = {self.fleet_path.resolve(), self.models_path.resolve()}
        keys_path = self.config.keys_path if self.config else None
        if keys_path is not None:
            watched.add(keys_path.resolve())  # a saved keys.toml applies without a restart
        directories = sorted({str(path.parent) for path in watched})
        debounce_ms = max(1, int(self.debounce_s * 1000))
        self._watch_stop.clear()
        async for _changes in awatch(
            *directories,
            # Only the config files: a log file written next to them must not count (nor
            # wake the watcher, whose own log line would be the next change).
            watch_filter=lambda _change, path: Path(path) in watched,
            debounce=debounce_ms,
            step=20,
            recursive=False,
            stop_event=self._watch_stop,
        ):
            log.info("config file change seen, reconciling")
            self.trigger()


async def _stop_watching(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """End the watcher through its stop event: a cancel can be lost while its thread waits."""
    stop.set()
    done, _ = await asyncio.wait({task}, timeout=WATCH_STOP_S)
    if not done:
        log.warning("file watcher did not stop within %ss; cancelling it", WATCH_STOP_S)
        task.cancel()
        return
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


def _listen_addresses(config: Config) -> tuple[str, str]:
    gateway = config.fleet.gateway
    return (gateway.listen, gateway.metrics_listen)
