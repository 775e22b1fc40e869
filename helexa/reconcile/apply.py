"""Run a plan against the neurons: preconditions re-checked, neurons in parallel.

Every action gets a task.  It waits for the actions it depends on and for the
action before it on the same neuron (one neuron does one thing at a time, in
plan order; different neurons run in parallel).  Right before it runs, its
neuron is polled afresh and its precondition re-checked: an action whose effect
is already there is skipped, one whose precondition fails is failed without a
call.  After a failure on a neuron the rest of that neuron's actions are not
attempted (what it holds is unknown until the next plan); other neurons go on.

Host actions (SSH-managed neurons) run first, one task per host through a
`HostControl`, which re-plans the host as their precondition; that neuron's model
actions wait for them, and after a restart for the neuron to answer again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from helexa.config import ModelSpec, NeuronEntry
from helexa.deploy.hostplan import HostAction
from helexa.errors import ActionFailed, APIError
from helexa.fleet import placement
from helexa.fleet.decisions import log_decision
from helexa.fleet.state import FleetState, ObservedNeuron
from helexa.protocol.neuron import LoadRequest, ModelInfo, ModelsList
from helexa.reconcile.desired import DesiredState
from helexa.reconcile.observed import PRESENT_STATES
from helexa.reconcile.plan import Action, Plan, Step
from helexa.reconcile.report import (
    ActionResult,
    ActionStatus,
    ApplyReport,
    Phase,
    ProgressEvent,
)

log = logging.getLogger("helexa.reconcile.apply")

Progress = Callable[[ProgressEvent], None]
PROGRESS_TICK_S = 5.0  # "still running" line this often while a call is in flight
RESTART_TIMEOUT_S = 300.0  # a restarted neuron must answer again within this
RESTART_POLL_S = 0.5


class NeuronControl(Protocol):
    """The neuron calls apply makes (the gateway's NeuronClient fits)."""

    async def load(self, neuron: NeuronEntry, request: LoadRequest) -> ModelInfo: ...

    async def unload(
        self, neuron: NeuronEntry, model: str, drain_timeout_s: float | None = None
    ) -> ModelsList: ...


class FleetRefresh(Protocol):
    """Fresh facts about one neuron (the gateway's FleetPoller fits)."""

    fleet: FleetState

    async def poll_neuron(self, name: str) -> ObservedNeuron: ...


class HostControl(Protocol):
    """Runs one host's actions (reconcile.hosts.HostRunner fits)."""

    async def apply(
        self,
        neuron: str,
        planned: tuple[HostAction, ...],
        emit: Callable[[HostAction, Phase, float, str], None],
    ) -> list[ActionResult]: ...


class NeuronRestarts(Protocol):
    """Restarts the neurons this process supervises (`helexa serve`'s local neurons)."""

    def can_restart(self, neuron: str) -> bool: ...

    async def restart(self, neuron: str) -> None: ...


# The action lock of one neuron, by name (helexa.fleet.locks.NeuronActionLocks fits).
NeuronLocks = Callable[[str], asyncio.Lock]


class Skip(Exception):
    """The action's effect is already there."""


class Applier:
    def __init__(
        self,
        desired: DesiredState,
        refresh: FleetRefresh,
        control: NeuronControl,
        *,
        progress: Progress | None = None,
        tick_s: float = PROGRESS_TICK_S,
        clock: Callable[[], float] = time.monotonic,
        hosts: HostControl | None = None,
        restart_timeout_s: float = RESTART_TIMEOUT_S,
        neuron_locks: NeuronLocks | None = None,
        restarts: NeuronRestarts | None = None,
    ) -> None:
        self.desired = desired
        self.restarts = restarts
        self.hosts = hosts
        self.restart_timeout_s = restart_timeout_s
        # Shared with the gateway's cold loader (one evict/load at a time per neuron);
        # the one-shot CLI has no cold loader and passes none.
        self.neuron_locks = neuron_locks
        self.refresh = refresh
        self.control = control
        self.progress = progress or (lambda _event: None)
        self.tick_s = tick_s
        self.clock = clock

    async def apply(self, plan: Plan) -> ApplyReport:
        outcomes: dict[str, asyncio.Future[ActionResult]] = {
            a.id: asyncio.get_running_loop().create_future() for a in plan.steps
        }
        previous_on: dict[str, str] = {}
        hosts = sorted({a.neuron for a in plan.host_actions})
        for neuron in hosts:  # a neuron's model actions wait for its host's last action
            previous_on[neuron] = plan.host_actions_on(neuron)[-1].id
        waits: dict[str, tuple[list[str], str | None]] = {}
        for action in plan.actions:
            waits[action.id] = (list(action.depends_on), previous_on.get(action.neuron))
            previous_on[action.neuron] = action.id
        async with asyncio.TaskGroup() as group:
            for neuron in hosts:
                group.create_task(self._run_host(neuron, plan.host_actions_on(neuron), outcomes))
            for action in plan.actions:
                deps, before = waits[action.id]
                group.create_task(self._run(action, deps, before, outcomes))
        return ApplyReport(tuple(outcomes[a.id].result() for a in plan.steps))

    async def _run_host(
        self,
        neuron: str,
        actions: tuple[HostAction, ...],
        outcomes: Mapping[str, asyncio.Future[ActionResult]],
    ) -> None:
        """One host's actions in order over SSH; after a restart, wait for the neuron."""
        if self.hosts is None:
            results = [ActionResult(a, "not_attempted", "no SSH access given") for a in actions]
        else:
            try:
                results = await self.hosts.apply(neuron, actions, self._emit)
            except Exception as exc:  # a bug must fail this host, not abandon the others
                log.exception("host actions on %s crashed", neuron)
                message = f"unexpected error: {exc!r}"
                results = [ActionResult(a, "failed", message) for a in actions]
        restarted = [r for r in results if r.action.kind == "restart" and r.status == "done"]
        if restarted and all(r.succeeded for r in results):
            problem = await self._wait_healthy(neuron)
            if problem:
                results[results.index(restarted[-1])] = replace(
                    restarted[-1], status="failed", message=problem
                )
                self._emit(restarted[-1].action, "failed", restarted[-1].elapsed_s, problem)
        for result in results:
            outcomes[result.action.id].set_result(result)

    async def _wait_healthy(self, neuron: str) -> str:
        """'' once the neuron answers its poll again, else why not (after restart_timeout_s)."""
        deadline = self.clock() + self.restart_timeout_s
        state = await self.refresh.poll_neuron(neuron)
        while not state.healthy and self.clock() < deadline:
            await asyncio.sleep(RESTART_POLL_S)
            state = await self.refresh.poll_neuron(neuron)
        if state.healthy:
            return ""
        return (
            f"restarted, but {neuron} did not answer within {self.restart_timeout_s:g}s: "
            f"{state.last_error}"
        )

    async def _run(
        self,
        action: Action,
        deps: list[str],
        before: str | None,
        outcomes: Mapping[str, asyncio.Future[ActionResult]],
    ) -> None:
        blocked = ""
        for dep in deps:
            if not (await asyncio.shield(outcomes[dep])).succeeded:
                blocked = blocked or f"{dep} did not succeed"
        if before is not None and not (await asyncio.shield(outcomes[before])).succeeded:
            blocked = blocked or f"an earlier action on {action.neuron} ({before}) did not succeed"
        result = (
            ActionResult(action, "not_attempted", blocked)
            if blocked
            else await self._attempt(action)
        )
        self._emit(action, result.status, result.elapsed_s, result.message)
        outcomes[action.id].set_result(result)

    async def _attempt(self, action: Action) -> ActionResult:
        started = self.clock()
        self._emit(action, "start", 0.0)
        status: ActionStatus = "done"
        message = ""
        call = asyncio.ensure_future(self._execute_locked(action))
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=self.tick_s)
                if done:
                    call.result()
                    break
                self._emit(action, "waiting", self.clock() - started)
        except Skip as why:
            status, message = "skipped", str(why)
        except (ActionFailed, APIError) as exc:
            status, message = "failed", _message(exc)
        except Exception as exc:  # a bug must fail one action, not abandon the others
            log.exception("action %s crashed", action.id)
            status, message = "failed", f"unexpected error: {exc!r}"
        finally:
            call.cancel()  # only matters when we are cancelled ourselves (shutdown)
        return ActionResult(action, status, message, self.clock() - started)

    def _emit(self, action: Step, phase: Phase, elapsed: float, message: str = "") -> None:
        self.progress(ProgressEvent(action, phase, elapsed, message, at=self.clock()))

    async def _execute_locked(self, action: Action) -> None:
        if self.neuron_locks is None:
            await self._execute(action)
            return
        async with self.neuron_locks(action.neuron):
            await self._execute(action)

    async def _execute(self, action: Action) -> None:
        entry = self.desired.neurons.get(action.neuron)
        if entry is None:
            raise ActionFailed(f"neuron {action.neuron} is no longer in fleet.toml")
        neuron = await self.refresh.poll_neuron(action.neuron)
        if not neuron.healthy:
            raise ActionFailed(f"neuron {action.neuron} is unreachable: {neuron.last_error}")
        if action.kind == "restart":
            await self._restart(action, neuron)
            return
        held = neuron.models.get(action.model)
        present = held is not None and held.state in PRESENT_STATES
        if action.kind == "unload":
            if not present and not (held is not None and held.state == "failed"):
                raise Skip(f"{action.model} is not on {action.neuron}")
            await self.control.unload(entry, action.model)
        else:
            spec = self._spec(action)
            if action.kind == "reload" and present:
                await self.control.unload(entry, action.model)
                neuron = await self.refresh.poll_neuron(action.neuron)
            elif present:
                raise Skip(f"{action.model} is already {held.state if held else ''} there")
            self._check_fits(spec, neuron)
            info = await self.control.load(entry, spec.load_request())
            if info.state == "failed":
                raise ActionFailed(info.error or f"{action.model} failed to load")
        await self.refresh.poll_neuron(action.neuron)
        log_decision(
            self.refresh.fleet,
            "keep_alive" if action.cause == "keep_alive" else action.kind,
            action.model,
            action.neuron,
            f"reconcile: {action.reason}",
        )

    async def _restart(self, action: Action, neuron: ObservedNeuron) -> None:
        """Defrag: restart an idle neuron this process supervises, then wait for it."""
        if self.restarts is None or not self.restarts.can_restart(action.neuron):
            raise ActionFailed(f"{action.neuron} is not supervised here: restart it by hand")
        if not neuron.is_idle():
            raise Skip(f"{action.neuron} is busy again; the next round looks again")
        log_decision(
            self.refresh.fleet, "defrag", "*", action.neuron, f"reconcile: {action.reason}"
        )
        await self.restarts.restart(action.neuron)
        problem = await self._wait_healthy(action.neuron)
        if problem:
            raise ActionFailed(problem)

    def _spec(self, action: Action) -> ModelSpec:
        spec = self.desired.specs.get(action.model)
        if spec is None:
            raise ActionFailed(f"{action.model} is no longer in models.toml")
        return spec

    def _check_fits(self, spec: ModelSpec, neuron: ObservedNeuron) -> None:
        need = placement.footprint(
            spec, self.refresh.fleet, self.desired.weights_bytes.get(spec.id)
        )
        if need.memory_mb and not placement.fits_on(spec, neuron, need.memory_mb):
            free = placement.usable_free_mb(
                spec, neuron, {d.index: d.memory_free_mb for d in neuron.devices}
            )
            raise ActionFailed(f"precondition: {free} MB free on {neuron.name} < {need.describe()}")


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__
