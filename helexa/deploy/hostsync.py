"""Plan and apply one SSH-managed neuron host: the entry points `helexa plan/apply`
use for host-level actions (bootstrap runs the same steps with its own reporting).

    async with await connect(target) as host:
        host_plan = await plan_host(host, entry, layout, version=..., token=...)
        print(render_host_actions(host_plan.actions))
        await apply_host(host, host_plan)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from helexa.config.fleet import NeuronEntry
from helexa.deploy.facts import HostFacts
from helexa.deploy.hostapply import HostApplier, Say, gather_facts
from helexa.deploy.hostplan import (
    DesiredHost,
    HostAction,
    desired_host,
    diff_host,
    file_diff,
    managed_paths,
)
from helexa.deploy.layout import HostLayout
from helexa.deploy.ssh import HostConnection


@dataclass(frozen=True)
class HostPlan:
    facts: HostFacts
    desired: DesiredHost
    actions: tuple[HostAction, ...]
    layout: HostLayout


async def plan_host(
    host: HostConnection,
    entry: NeuronEntry,
    layout: HostLayout,
    *,
    version: str,
    token: str | None,
    wheel: Path | None = None,
) -> HostPlan:
    """Facts, desired state and the actions between them; write_file actions on files
    that exist carry a unified diff in `after["diff"]` (secrets never do)."""
    facts = await gather_facts(host, layout, managed_paths(entry, layout))
    desired = desired_host(
        entry, layout, version=version, systemd=facts.systemd, token=token, wheel=wheel
    )
    actions = diff_host(desired, facts, layout)
    secrets = {str(f.path) for f in desired.files if f.secret}
    contents = {str(f.path): f.content for f in desired.files}
    detailed = []
    for action in actions:
        if action.kind == "write_file" and action.before and action.target not in secrets:
            current = await host.run(
                f"cat {shlex.quote(action.target)}", step=f"read {action.target}"
            )
            diff = file_diff(action.target, current.stdout, contents[action.target])
            action = replace(action, after={**(action.after or {}), "diff": diff})
        detailed.append(action)
    return HostPlan(facts, desired, tuple(detailed), layout)


async def apply_host(host: HostConnection, host_plan: HostPlan, say: Say = print) -> None:
    await HostApplier(host, host_plan.desired, host_plan.layout, say).apply(host_plan.actions)
