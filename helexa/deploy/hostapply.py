"""Carry out host actions over one SSH connection (the I/O shell around hostplan)."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from helexa.deploy.facts import HostFacts, host_facts, parse_probe_output, probe_script
from helexa.deploy.hostplan import DesiredHost, HostAction, ManagedFile
from helexa.deploy.layout import NEURON_UNIT, RPM_PACKAGE, HostLayout
from helexa.deploy.ssh import HostConnection

INSTALL_TIMEOUT_S = 1800.0  # torch wheels are large; pip on a slow link takes a while
STOP_TIMEOUT_S = 60  # the fallback supervisor drains like systemd's TimeoutStopSec

Say = Callable[[str], None]


async def gather_facts(
    host: HostConnection, layout: HostLayout, paths: list[PurePosixPath]
) -> HostFacts:
    script = probe_script(layout, paths)
    result = await host.run(script, step="gather facts", check=False)
    return host_facts(parse_probe_output(result.stdout))


@dataclass
class HostApplier:
    host: HostConnection
    desired: DesiredHost
    layout: HostLayout
    say: Say = print

    async def apply(self, actions: tuple[HostAction, ...]) -> None:
        """Run actions in plan order (already dependency-ordered); stops at the first failure."""
        await self.prepare(actions)
        for action in actions:
            self.say(f"  {action.symbol} {action.kind} {action.target}: {action.reason}")
            await self.run_action(action)

    async def prepare(self, actions: tuple[HostAction, ...]) -> None:
        """Record an owed restart on the host before the first change, so that a failure
        between a write and the restart leaves the restart planned for the next apply."""
        if any(a.kind == "restart" for a in actions):
            state = shlex.quote(str(self.layout.state_dir))
            marker = shlex.quote(str(self.layout.restart_marker))
            await self.host.run(f"mkdir -p {state} && touch {marker}", step="record restart")

    async def run_action(self, action: HostAction) -> None:
        files = {str(f.path): f for f in self.desired.files}
        if action.kind == "create_user":
            await self._create_user()
        elif action.kind == "install":
            await self._install()
        elif action.kind == "write_file":
            await self._write(files[action.target])
        elif action.kind == "daemon_reload":
            await self.host.run("systemctl daemon-reload", step="daemon-reload")
        elif action.kind == "enable":
            await self.host.run(f"systemctl enable {NEURON_UNIT}", step="enable")
        elif action.kind == "restart":
            await self.restart()
            marker = shlex.quote(str(self.layout.restart_marker))
            await self.host.run(f"rm -f {marker}", step="clear restart record")

    async def _create_user(self) -> None:
        user = shlex.quote(self.desired.service_user)
        home = shlex.quote(str(self.layout.state_dir))
        await self.host.run(
            f"useradd --system --user-group --home-dir {home} --shell /sbin/nologin {user}",
            step="create user",
        )

    async def _install(self) -> None:
        step = f"install helexa {self.desired.version}"
        if self.desired.install == "rpm":
            package = f"{RPM_PACKAGE}-{self.desired.version}"
            await self.host.run(f"dnf install -y {package}", step=step, timeout_s=INSTALL_TIMEOUT_S)
            return
        python = shlex.quote(str(self.layout.venv_python))
        prefix = shlex.quote(str(self.layout.prefix))
        await self.host.run(
            f"test -x {python} || {shlex.quote(self.layout.python)} -m venv {prefix}",
            step="create venv",
        )
        if self.desired.wheel is not None:
            remote = self.layout.wheel_dir / self.desired.wheel.name
            wheel = await asyncio.to_thread(self.desired.wheel.read_bytes)
            await self.host.upload(wheel, remote, step="push wheel")
            requirement = f"{remote}[neuron]"
        else:
            requirement = f"helexa[neuron]=={self.desired.version}"
        await self.host.run(
            f"{python} -m pip install --quiet --disable-pip-version-check "
            f"--upgrade {shlex.quote(requirement)}",
            step=step,
            timeout_s=INSTALL_TIMEOUT_S,
        )

    async def _write(self, managed: ManagedFile) -> None:
        await self.host.upload(
            managed.content.encode("utf-8"),
            managed.path,
            step=f"write {managed.path}",
            mode=managed.mode,
            owner=managed.owner,
            group=managed.group,
        )

    async def restart(self) -> None:
        """systemctl restart, or (no systemd) stop and start the supervisor."""
        if self.desired.systemd:
            await self.host.run(f"systemctl restart {NEURON_UNIT}", step="restart")
            return
        await self.host.run(stop_supervisor_command(self.layout), step="stop neuron")
        await self.host.run(start_supervisor_command(self.layout), step="start neuron")

    async def log_tail(self, lines: int = 30) -> str:
        """The neuron's last log lines, for error messages."""
        if self.desired.systemd:
            command = f"journalctl -u {NEURON_UNIT} -n {lines} --no-pager"
        else:
            command = f"tail -n {lines} {shlex.quote(str(self.layout.logfile))}"
        result = await self.host.run(command, step="read log", check=False)
        return result.stdout.strip()


def stop_supervisor_command(layout: HostLayout) -> str:
    """TERM the supervisor's process group (it and the neuron), wait until it is gone."""
    pidfile = shlex.quote(str(layout.pidfile))
    return (
        f'if pid=$(cat {pidfile} 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then '
        f'kill -TERM "-$pid"; i=0; '
        f'while kill -0 "$pid" 2>/dev/null && [ $i -lt {STOP_TIMEOUT_S * 10} ]; do '
        f"sleep 0.1; i=$((i + 1)); done; "
        f'kill -KILL "-$pid" 2>/dev/null; fi; rm -f {pidfile}'
    )


def start_supervisor_command(layout: HostLayout) -> str:
    """Start the supervisor in its own session (it outlives the SSH session) with a pidfile."""
    q = shlex.quote
    state = q(str(layout.state_dir))
    script = q(str(layout.supervisor_script))
    user = q(layout.user)
    # `a && b &` would background a subshell holding the SSH channel open: keep `&` alone.
    return (
        f"install -d -m 0750 -o {user} -g {user} {state} {q(str(layout.cache_dir))} || exit 1\n"
        f"setsid nohup {script} >> {q(str(layout.logfile))} 2>&1 < /dev/null &\n"
        f"echo $! > {q(str(layout.pidfile))}"
    )
