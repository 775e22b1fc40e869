"""The pure host diff: desired files/package/service vs gathered facts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from helexa.config.fleet import NeuronEntry
from helexa.deploy.facts import HostFacts, OsRelease
from helexa.deploy.hostplan import (
    SECRET_MASK,
    DesiredHost,
    desired_host,
    diff_host,
    file_diff,
    managed_paths,
    render_host_actions,
)
from helexa.deploy.layout import HostLayout

LAYOUT = HostLayout()
ENTRY = NeuronEntry(
    name="beast",
    endpoint="http://beast.internal:13131",
    ssh="root@beast.internal",
    install="rpm",
    token_file=Path("/etc/helexa/fleet.token"),
)


def _desired(entry: NeuronEntry = ENTRY, systemd: bool = True) -> DesiredHost:
    return desired_host(entry, LAYOUT, version="0.2.0", systemd=systemd, token="s3cret")


def _fresh(systemd: bool = True) -> HostFacts:
    return HostFacts(
        os=OsRelease("fedora", "40"), arch="x86_64", python=(3, 12, 4), systemd=systemd
    )


def _converged(desired: DesiredHost) -> HostFacts:
    return HostFacts(
        os=OsRelease("fedora", "40"),
        arch="x86_64",
        python=(3, 12, 4),
        systemd=True,
        rpm_version="0.2.0",
        file_hashes={str(f.path): f.sha256 for f in desired.files},
        unit_enabled="enabled",
        unit_active="active",
        service_user_exists=True,
    )


def test_fresh_host_gets_everything_in_dependency_order() -> None:
    actions = diff_host(_desired(), _fresh(), LAYOUT)
    kinds = [(a.kind, a.target) for a in actions]
    assert kinds == [
        ("create_user", "helexa"),
        ("install", "helexa-neuron"),
        ("write_file", "/etc/helexa/neuron.toml"),
        ("write_file", "/etc/helexa/fleet.token"),
        ("write_file", "/etc/systemd/system/helexa-neuron.service"),
        ("daemon_reload", "helexa-neuron.service"),
        ("enable", "helexa-neuron.service"),
        ("restart", "helexa-neuron.service"),
    ]
    by_kind = {a.kind: a for a in actions}
    assert by_kind["install"].depends_on == ("h1",)
    assert set(by_kind["restart"].depends_on) >= {"h2", "h3", "h4", "h5", "h6", "h7"}
    assert [a.symbol for a in actions] == ["+", "+", "+", "+", "+", "↻", "+", "↻"]


def test_converged_host_has_no_actions() -> None:
    desired = _desired()
    assert diff_host(desired, _converged(desired), LAYOUT) == ()


def test_changed_setting_rewrites_the_config_and_restarts() -> None:
    observed = _converged(_desired())
    moved = ENTRY.model_copy(update={"endpoint": "http://beast.internal:14141"})
    actions = diff_host(_desired(moved), observed, LAYOUT)
    assert [(a.kind, a.symbol) for a in actions] == [("write_file", "~"), ("restart", "↻")]
    write, restart = actions
    assert write.target == "/etc/helexa/neuron.toml" and write.reason == "content differs"
    assert 'listen = "0.0.0.0:14141"' in write.after["content"]  # type: ignore[index]
    assert restart.depends_on == ("h1",) and restart.reason == "its package or files changed"


def test_upgrade_and_a_stopped_service() -> None:
    desired = _desired()
    old = _converged(desired)
    old = HostFacts(**{**old.__dict__, "rpm_version": "0.1.0", "unit_active": "failed"})
    actions = diff_host(desired, old, LAYOUT)
    assert [(a.kind, a.symbol) for a in actions] == [("install", "~"), ("restart", "↻")]
    assert actions[0].before == {"version": "0.1.0"}
    assert "installed 0.1.0, want 0.2.0" in actions[0].reason


def test_secrets_are_masked_in_plans() -> None:
    actions = diff_host(_desired(), _fresh(), LAYOUT)
    token = next(a for a in actions if a.target == "/etc/helexa/fleet.token")
    assert token.after is not None and token.after["content"] == SECRET_MASK
    assert "s3cret" not in str([a.to_json() for a in actions])
    assert token.after["mode"] == "0640" and token.after["owner"] == "root:helexa"


def test_without_systemd_the_supervisor_script_is_managed() -> None:
    desired = _desired(systemd=False)
    actions = diff_host(desired, _fresh(systemd=False), LAYOUT)
    targets = [a.target for a in actions]
    assert "/opt/helexa/bin/helexa-neuron-supervise" in targets
    assert not any(a.kind in ("daemon_reload", "enable") for a in actions)
    assert actions[-1].kind == "restart"
    assert actions[-1].target == "/opt/helexa/bin/helexa-neuron-supervise"
    running = HostFacts(
        **{
            **_converged(desired).__dict__,
            "systemd": False,
            "supervised_pid": 4242,
            "file_hashes": {str(f.path): f.sha256 for f in desired.files},
        }
    )
    assert diff_host(desired, running, LAYOUT) == ()


def test_managed_paths_cover_both_service_styles() -> None:
    paths = {str(p) for p in managed_paths(ENTRY, LAYOUT)}
    for systemd in (True, False):
        assert {str(f.path) for f in _desired(systemd=systemd).files} <= paths


def test_rendered_actions_show_diffs_but_never_secrets() -> None:
    desired = _desired()
    observed = _converged(desired)
    stale = dict(observed.file_hashes)
    stale["/etc/helexa/fleet.token"] = "0" * 64
    stale["/etc/helexa/neuron.toml"] = "1" * 64
    actions = diff_host(desired, HostFacts(**{**observed.__dict__, "file_hashes": stale}), LAYOUT)
    config = next(a for a in actions if a.target == "/etc/helexa/neuron.toml")
    diff = file_diff(config.target, "[neuron]\nmax_queue = 8\n", "[neuron]\nmax_queue = 16\n")
    with_diff = tuple(
        replace(a, after={**(a.after or {}), "diff": diff}) if a is config else a for a in actions
    )
    text = render_host_actions(with_diff)
    assert text.splitlines() == [
        "~ write_file /etc/helexa/neuron.toml on beast: content differs",
        "    --- /etc/helexa/neuron.toml (on host)",
        "    +++ /etc/helexa/neuron.toml (rendered)",
        "    @@ -1,2 +1,2 @@",
        "     [neuron]",
        "    -max_queue = 8",
        "    +max_queue = 16",
        "~ write_file /etc/helexa/fleet.token on beast: content differs",
        "    (secret: content not shown)",
        "↻ restart helexa-neuron.service on beast: its package or files changed",
    ]
    assert render_host_actions(()) == ""


def test_a_recorded_pending_restart_is_planned_on_a_converged_host() -> None:
    desired = _desired()
    pending = replace(_converged(desired), restart_pending=True)
    (restart,) = diff_host(desired, pending, LAYOUT)
    assert (restart.kind, restart.symbol) == ("restart", "↻")
    assert restart.reason.startswith("pending: an earlier apply")
