"""Host-level reconcile: the pure merge into the plan, and SSH against a real sshd."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import httpx
import pytest

from helexa.cli import main
from helexa.config import load_config
from helexa.config.edit import upsert_neuron
from helexa.config.fleet import NeuronEntry
from helexa.deploy.bootstrap import wait_healthy
from helexa.deploy.facts import HostFacts, OsRelease
from helexa.deploy.hostplan import HostAction, desired_host
from helexa.deploy.hostsync import HostPlan
from helexa.deploy.layout import HostLayout
from helexa.fleet.neuron_client import NeuronClient
from helexa.fleet.poller import FleetPoller, PollSettings
from helexa.fleet.state import FleetState
from helexa.reconcile.daemon import ReconcileDaemon
from helexa.reconcile.diff import diff
from helexa.reconcile.hosts import (
    HostAccess,
    HostObservation,
    HostRunner,
    after_restarts,
    number_host_actions,
    observe_hosts,
    with_hosts,
)
from helexa.reconcile.plan import Plan
from helexa.reconcile.render import render_text, summary_line
from helexa.testing.neuron_proc import free_port
from tests.deploy.hosts import offline_venv, stop_supervised_neuron, temp_layout
from tests.deploy.sshd import Sshd, keygen
from tests.reconcile.fleets import desired, fleet, hold, observed, spec
from tests.reconcile.live import ConfigFiles, fleet_toml, write_config

FACTS = HostFacts(os=OsRelease("fedora", "40"), arch="x86_64", python=(3, 12, 0), systemd=True)


def host_plan(*actions: HostAction, **facts: object) -> HostPlan:
    entry = NeuronEntry(name="a", endpoint="http://127.0.0.1:9", ssh="root@127.0.0.1")
    wanted = desired_host(entry, HostLayout(), version="1.0", systemd=True, token=None)
    return HostPlan(HostFacts(**{**FACTS.__dict__, **facts}), wanted, actions, HostLayout())


def trust_host_key(sshd: Sshd) -> None:
    key = Path(f"{sshd.host_key}.pub").read_text()
    sshd.known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {key}")


def exists(path: PurePosixPath) -> bool:
    return Path(path).exists()


WRITE = HostAction(
    "h1",
    "write_file",
    "a",
    "/etc/helexa/neuron.toml",
    "content differs",
    before={"sha256": "0" * 64},
    after={"diff": "--- old\n+++ new\n-a = 1\n+a = 2\n"},
)
RESTART = HostAction(
    "h2", "restart", "a", "helexa-neuron.service", "its package or files changed",
    depends_on=("h1",),
)  # fmt: skip


def test_host_actions_are_numbered_plan_wide_with_their_dependencies() -> None:
    hosts = {
        "b": HostObservation("b", host_plan(*(replace(a, neuron="b") for a in (WRITE, RESTART)))),
        "a": HostObservation("a", host_plan(WRITE, RESTART)),
        "c": HostObservation("c", error="root@c: connect: refused"),
    }
    numbered = number_host_actions(hosts)
    assert [(a.id, a.neuron, a.depends_on) for a in numbered] == [
        ("h1", "a", ()),
        ("h2", "a", ("h1",)),
        ("h3", "b", ()),
        ("h4", "b", ("h3",)),
    ]


def test_with_hosts_adds_actions_errors_and_a_fingerprint_of_the_facts() -> None:
    state = observed(fleet(a=1000))
    plan = diff(desired(), state)
    clean = {"a": HostObservation("a", host_plan())}
    merged = with_hosts(plan, state, clean)
    assert not merged.has_changes and merged.observed != plan.observed
    drifted = {"a": HostObservation("a", host_plan(file_hashes={"/etc/x": "1" * 64}))}
    assert with_hosts(plan, state, drifted).observed != merged.observed  # stale plans refused
    pending = {"a": HostObservation("a", host_plan(restart_pending=True))}
    assert with_hosts(plan, state, pending).observed != merged.observed
    broken = {"a": HostObservation("a", error="root@a: connect: timed out after 5s")}
    failed = with_hosts(plan, state, broken)
    assert [(e.model, e.message) for e in failed.errors] == [
        ("host a", "root@a: connect: timed out after 5s")
    ]
    assert with_hosts(plan, state, {}) is plan  # no managed hosts: the model plan as it was


def test_the_model_diff_sees_a_restarted_neuron_empty() -> None:
    state = observed(hold(fleet(a=1000), "a", "m", 100))
    wanted = desired(spec("m", pin=True, dtype="float32"))
    assert not diff(wanted, state).actions
    hosts = {"a": HostObservation("a", host_plan(WRITE, RESTART))}
    plan = with_hosts(diff(wanted, after_restarts(state, hosts)), state, hosts)
    assert [(a.kind, a.model) for a in plan.actions] == [("load", "m")]
    assert state.fleet.neurons["a"].models  # the observation itself is left alone


def test_render_shows_host_actions_first_with_diffs_and_masked_secrets() -> None:
    secret = HostAction(
        "h3", "write_file", "a", "/etc/helexa/fleet.token", "missing",
        after={"content": "********"},
    )  # fmt: skip
    plan = Plan("g" * 64, "o" * 64, host_actions=(WRITE, RESTART, secret))
    text = render_text(plan)
    assert text.index("h1 ~ write_file /etc/helexa/neuron.toml on a") < text.index(
        "h2 ↻ restart helexa-neuron.service on a (after h1)"
    )
    assert "          +a = 2" in text
    assert "(secret: content not shown)" in text
    assert summary_line(plan) == (
        "Plan: 0 to load, 0 to unload, 0 to change, 3 host actions on 1 host."
    )
    assert Plan.from_json(plan.to_json()) == plan


async def test_an_unreachable_host_is_a_plan_error_naming_host_and_step(
    sshd: Sshd, tmp_path: Path
) -> None:
    entry = NeuronEntry(name="n1", endpoint="http://127.0.0.1:9", ssh=f"root@127.0.0.1:{sshd.port}")
    layout = temp_layout(tmp_path / "host")
    unknown = HostAccess(known_hosts=sshd.known_hosts, identity=sshd.client_key, layout=layout)
    (found,) = (await observe_hosts([entry], unknown)).values()
    assert found.error is not None
    assert f"root@127.0.0.1:{sshd.port}: connect: unknown host key" in found.error

    stranger = keygen(tmp_path / "stranger")
    trust_host_key(sshd)
    wrong_key = HostAccess(known_hosts=sshd.known_hosts, identity=stranger, layout=layout)
    (found,) = (await observe_hosts([entry], wrong_key)).values()
    assert found.error is not None
    assert f"root@127.0.0.1:{sshd.port}: connect: key authentication refused" in found.error


async def test_apply_refuses_a_host_that_changed_since_the_plan(sshd: Sshd, tmp_path: Path) -> None:
    entry = NeuronEntry(name="n1", endpoint="http://127.0.0.1:9", ssh=f"root@127.0.0.1:{sshd.port}")
    trust_host_key(sshd)
    layout = temp_layout(tmp_path / "host")
    access = HostAccess(known_hosts=sshd.known_hosts, identity=sshd.client_key, layout=layout)
    runner = HostRunner(access, {"n1": entry})
    stale = (
        HostAction("h1", "write_file", "n1", str(layout.neuron_toml), "content differs"),
        HostAction("h2", "restart", "n1", str(layout.supervisor_script), "changed"),
    )
    seen: list[tuple[str, str]] = []
    results = await runner.apply("n1", stale, lambda a, phase, _s, _m: seen.append((a.id, phase)))
    assert [r.status for r in results] == ["failed", "not_attempted"]
    assert "precondition: n1 changed since the plan (it now needs: install" in results[0].message
    assert seen == [("h1", "failed"), ("h2", "not_attempted")]
    assert not exists(layout.neuron_toml)  # nothing was written


# -- end to end: bootstrap, then `helexa plan` / `helexa apply` over SSH -------------------


@dataclass(frozen=True)
class LoopyHost:
    """The loopback host "loopy" the end-to-end tests bootstrap, and the flags to reach it."""

    token: Path
    endpoint: str
    ssh_flags: list[str]
    layout_flags: list[str]
    bootstrap: list[str]  # the `helexa bootstrap` argv

    @classmethod
    def make(
        cls, tmp_path: Path, sshd: Sshd, layout: HostLayout, wheel: Path, fleet_path: Path
    ) -> LoopyHost:
        token = tmp_path / "fleet.token"
        token.write_text("s3cret\n")
        endpoint = f"http://127.0.0.1:{free_port()}"
        layout_flags = [
            "--prefix", str(layout.prefix), "--config-dir", str(layout.config_dir),
            "--state-dir", str(layout.state_dir), "--unit-dir", str(layout.unit_dir),
            "--service-user", "root",
        ]  # fmt: skip
        ssh_flags = ["--identity", str(sshd.client_key), "--known-hosts", str(sshd.known_hosts)]
        bootstrap = [
            "bootstrap", "127.0.0.1", "--name", "loopy", "--ssh-port", str(sshd.port),
            "--install", "pip", "--wheel", str(wheel), "--fleet", str(fleet_path),
            "--endpoint", endpoint, "--token-file", str(token), "--accept-new-host-key",
            "--health-timeout", "120", *ssh_flags, *layout_flags,
        ]  # fmt: skip
        return cls(token, endpoint, ssh_flags, layout_flags, bootstrap)


def test_a_changed_setting_reaches_the_host_through_plan_and_apply(
    sshd: Sshd, helexa_wheel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = temp_layout(tmp_path / "host")
    offline_venv(Path(layout.prefix))
    files = write_config(tmp_path, fleet_toml({}), [])
    loopy = LoopyHost.make(tmp_path, sshd, layout, helexa_wheel, files.fleet)
    endpoint, bootstrap = loopy.endpoint, loopy.bootstrap
    flags = [*files.flags, *loopy.ssh_flags, *loopy.layout_flags]
    try:
        assert main(bootstrap) == 0
        assert main(["plan", *flags]) == 0  # bootstrap left nothing for plan to do
        assert "No changes." in capsys.readouterr().out

        rotated = tmp_path / "rotated.token"
        rotated.write_text("n3w\n")
        upsert_neuron(files.fleet, "loopy", {"token_file": str(rotated)})
        saved = tmp_path / "plan.json"
        assert main(["plan", *flags, "--out", str(saved)]) == 2
        out = capsys.readouterr().out
        assert f"~ write_file {layout.neuron_toml} on loopy" in out
        assert f'+token_file = "{rotated}"' in out  # the diff of neuron.toml
        assert f"↻ restart {layout.supervisor_script} on loopy" in out
        assert "n3w" not in out and "s3cret" not in out
        assert "host actions on 1 host." in out

        # Drift on the host after the plan was saved: the saved plan is refused.
        with open(layout.neuron_toml, "a") as config:
            config.write("# edited by hand\n")
        assert main(["apply", str(saved), "--yes", *flags]) == 1
        assert "Refusing the saved plan: the fleet changed" in capsys.readouterr().err

        # The restart fails half way (the cache dir is blocked by a file): it stays owed.
        cache = Path(layout.cache_dir)
        shutil.rmtree(cache)
        cache.write_text("in the way\n")
        assert main(["apply", "--yes", *flags]) == 1
        out = capsys.readouterr().out
        assert f"root@127.0.0.1:{sshd.port}: start neuron: " in out
        assert "Apply failed" in out
        assert main(["plan", *flags]) == 2
        out = capsys.readouterr().out
        assert "write_file" not in out  # the files were written ...
        assert "pending: an earlier apply changed the host but did not restart it" in out

        cache.unlink()
        assert main(["apply", "--yes", *flags]) == 0
        out = capsys.readouterr().out
        assert "Apply complete" in out
        assert main(["plan", *flags]) == 0
        assert "No changes." in capsys.readouterr().out
        assert asyncio.run(wait_healthy(endpoint, "n3w", 30))["devices"]
    finally:
        stop_supervised_neuron(layout)


# -- the daemon inside `helexa serve`: host actions applied only with auto_apply = "all" ----


def set_auto_apply(fleet_path: Path, value: str) -> None:
    text = fleet_path.read_text()
    (current,) = re.findall(r'auto_apply = "\w+"', text)
    fleet_path.write_text(text.replace(current, f'auto_apply = "{value}"'))


def uptime(endpoint: str, token: str) -> float:
    health = httpx.get(f"{endpoint}/health", headers={"Authorization": f"Bearer {token}"})
    return float(health.json()["uptime_s"])


async def daemon_round(files: ConfigFiles, access: HostAccess, restarts: dict[str, str]) -> Plan:
    """One round of the daemon as `helexa serve` runs it (its poller, client, host access)."""
    config = load_config(files.fleet, files.models)
    fleet = FleetState()
    poller = FleetPoller(
        fleet, config.fleet.neurons, PollSettings(timeout=2.0, failure_threshold=1)
    )
    client = NeuronClient()
    daemon = ReconcileDaemon(
        files.fleet, files.models, fleet, poller, client, config=config, hosts=access
    )
    daemon.request_restarts(restarts)
    async with poller:
        try:
            plan = await daemon.reconcile_once()
        finally:
            await client.close()
    assert plan is not None and daemon.last_plan is not None
    if daemon.last_report is None and plan.host_actions:  # nothing applied: all pending
        assert [a.id for a in daemon.pending()] == [a.id for a in plan.host_actions]
        converged = daemon.conditions.get("Converged")
        assert converged is not None and converged.reason == "ActionsPending"
    elif daemon.last_report is not None:
        assert daemon.last_report.ok, daemon.last_report.summary()
        assert not daemon.pending()
        assert daemon.requested_restarts == {}  # the restart was done: asked no more
    return plan


def test_the_daemon_applies_host_actions_with_all_and_only_plans_them_with_models(
    sshd: Sshd, helexa_wheel: Path, tmp_path: Path
) -> None:
    layout = temp_layout(tmp_path / "host")
    offline_venv(Path(layout.prefix))
    files = write_config(tmp_path, fleet_toml({}, auto="models"), [])
    loopy = LoopyHost.make(tmp_path, sshd, layout, helexa_wheel, files.fleet)
    endpoint, bootstrap = loopy.endpoint, loopy.bootstrap
    access = HostAccess(known_hosts=sshd.known_hosts, identity=sshd.client_key, layout=layout)
    try:
        assert main(bootstrap) == 0
        rotated = tmp_path / "rotated.token"
        rotated.write_text("n3w\n")
        upsert_neuron(files.fleet, "loopy", {"token_file": str(rotated)})

        # "models": the daemon plans the host actions and leaves them pending.
        plan = asyncio.run(daemon_round(files, access, {}))
        assert [(a.kind, a.target) for a in plan.host_actions] == [
            ("write_file", str(layout.neuron_toml)),
            ("restart", str(layout.supervisor_script)),
        ]
        assert str(rotated) not in Path(layout.neuron_toml).read_text()

        # "all": the same round applies them; the neuron answers with the new token.
        set_auto_apply(files.fleet, "all")
        plan = asyncio.run(daemon_round(files, access, {}))
        assert [a.kind for a in plan.host_actions] == ["write_file", "restart"]
        assert str(rotated) in Path(layout.neuron_toml).read_text()
        assert asyncio.run(wait_healthy(endpoint, "n3w", 30))["devices"]

        # A restart asked for by name (an SSH-managed neuron's defrag): planned with "models" ...
        set_auto_apply(files.fleet, "models")
        asked = {"loopy": "defrag: 3 load/unload cycles >= defrag_after_cycles 3, idle"}
        plan = asyncio.run(daemon_round(files, access, asked))
        assert [(a.kind, a.reason) for a in plan.host_actions] == [("restart", asked["loopy"])]
        before = time.time()

        # ... and done with "all" (the host itself needs nothing: no precondition failure).
        set_auto_apply(files.fleet, "all")
        plan = asyncio.run(daemon_round(files, access, asked))
        assert [a.kind for a in plan.host_actions] == ["restart"]
        asyncio.run(wait_healthy(endpoint, "n3w", 30))
        assert uptime(endpoint, "n3w") < time.time() - before  # started after `before`
        assert not asyncio.run(daemon_round(files, access, {})).host_actions
    finally:
        stop_supervised_neuron(layout)
