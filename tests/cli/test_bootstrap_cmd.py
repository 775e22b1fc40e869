"""`helexa bootstrap` end to end: a real sshd on loopback, a wheel of this repository,
the neuron started by the no-systemd supervisor, fleet.toml edited with comments kept."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helexa import __version__
from helexa.cli import main
from helexa.cli.bootstrap_cmd import default_name, resolve_entry
from helexa.config.edit import upsert_neuron
from helexa.config.fleet import FleetConfig, NeuronEntry
from helexa.config.loader import load_toml
from helexa.deploy.bootstrap import wait_healthy
from helexa.deploy.hostplan import HostAction, render_host_actions
from helexa.deploy.hostsync import apply_host, plan_host
from helexa.deploy.layout import HostLayout
from helexa.deploy.ssh import SSHTarget, connect
from helexa.neuron.config import load_neuron_config
from helexa.testing.neuron_proc import free_port
from tests.deploy.hosts import build_wheel, offline_venv, stop_supervised_neuron, temp_layout
from tests.deploy.sshd import Sshd, keygen, run_sshd

FLEET = """\
# The fleet (this comment must survive bootstrap).
[gateway]
listen = "127.0.0.1:31313"  # loopback only

[[neurons]]
name = "local"  # the gateway's own neuron
endpoint = "http://127.0.0.1:13131"
local = true
"""


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    with run_sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture(scope="module")
def helexa_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_bootstrap_over_ssh_end_to_end(
    sshd: Sshd, helexa_wheel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = temp_layout(tmp_path / "host")
    offline_venv(Path(layout.prefix))
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET)
    token_file = tmp_path / "fleet.token"
    token_file.write_text("s3cret\n")
    endpoint = f"http://127.0.0.1:{free_port()}"
    args = [
        "bootstrap", "127.0.0.1", "--name", "loopy", "--ssh-port", str(sshd.port),
        "--identity", str(sshd.client_key), "--known-hosts", str(sshd.known_hosts),
        "--install", "pip", "--wheel", str(helexa_wheel), "--fleet", str(fleet),
        "--endpoint", endpoint, "--token-file", str(token_file),
        "--prefix", str(layout.prefix), "--config-dir", str(layout.config_dir),
        "--state-dir", str(layout.state_dir), "--unit-dir", str(layout.unit_dir),
        "--service-user", "root", "--health-timeout", "120",
    ]  # fmt: skip
    try:
        assert main(args) == 1  # first contact needs the flag
        refused = capsys.readouterr().err
        assert "unknown host key" in refused and "--accept-new-host-key" in refused
        assert fleet.read_text() == FLEET

        assert main([*args, "--accept-new-host-key"]) == 0
        first = capsys.readouterr().out
        assert "install" in first and "write_file" in first and "restart" in first
        assert "systemd is not running: the neuron runs under a supervisor script" in first
        assert first.rstrip().endswith("bootstrap: changed")
        health = httpx.get(f"{endpoint}/health")
        assert health.json()["status"] == "ok"
        assert httpx.get(f"{endpoint}/discovery").status_code == 401  # token enforced
        auth = {"Authorization": "Bearer s3cret"}
        assert httpx.get(f"{endpoint}/discovery", headers=auth).json()["devices"]

        config_path = Path(layout.neuron_toml)
        assert config_path.stat().st_mode & 0o777 == 0o640
        neuron = load_neuron_config(config_path)
        assert (neuron.neuron.name, neuron.neuron.token_file) == ("loopy", token_file)
        text = fleet.read_text()
        assert text.startswith(FLEET.rstrip("\n"))  # comments and order intact
        entry = load_toml(fleet, FleetConfig).neuron("loopy")
        assert entry is not None
        assert (entry.endpoint, entry.install, entry.token_file) == (endpoint, "pip", token_file)
        assert entry.ssh == f"root@127.0.0.1:{sshd.port}"
        pid = Path(layout.pidfile).read_text()

        assert main(args) == 0  # the host key is known now
        second = capsys.readouterr().out
        assert "host: up to date" in second and "entry up to date" in second
        assert second.rstrip().endswith("bootstrap: no changes")
        assert fleet.read_text() == text
        assert Path(layout.pidfile).read_text() == pid  # not restarted

        # A changed setting in fleet.toml: the host plan rewrites and restarts, then converges.
        rotated = tmp_path / "rotated.token"
        rotated.write_text("n3w\n")
        upsert_neuron(fleet, "loopy", {"token_file": str(rotated)})
        changed = load_toml(fleet, FleetConfig).neuron("loopy")
        assert changed is not None
        target = sshd.target(accept_new_host_key=False)
        rendered, after = asyncio.run(_plan_apply_replan(target, changed, layout, "n3w"))
        assert "~ write_file " + str(layout.neuron_toml) + " on loopy: content differs" in rendered
        assert f'+token_file = "{rotated}"' in rendered  # the diff of neuron.toml
        # (The token file itself is this same machine's file, already equal: no write.)
        assert "n3w" not in rendered
        assert "↻ restart" in rendered
        assert after == ()
        discovery = asyncio.run(wait_healthy(endpoint, "n3w", 120))
        assert discovery["devices"]
    finally:
        stop_supervised_neuron(layout)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{endpoint}/health")


async def _plan_apply_replan(
    target: SSHTarget, entry: NeuronEntry, layout: HostLayout, token: str
) -> tuple[str, tuple[HostAction, ...]]:
    async with await connect(target) as host:
        host_plan = await plan_host(host, entry, layout, version=__version__, token=token)
        await apply_host(host, host_plan, say=lambda _: None)
        again = await plan_host(host, entry, layout, version=__version__, token=token)
    return render_host_actions(host_plan.actions), again.actions


def test_wrong_key_names_host_and_step(
    sshd: Sshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET)
    stranger = keygen(tmp_path / "stranger")
    code = main(
        [
            "bootstrap",
            "127.0.0.1",
            "--ssh-port",
            str(sshd.port),
            "--identity",
            str(stranger),
            "--known-hosts",
            str(sshd.known_hosts),
            "--accept-new-host-key",
            "--fleet",
            str(fleet),
            "--install",
            "pip",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"root@127.0.0.1:{sshd.port}: connect: key authentication refused" in err
    assert fleet.read_text() == FLEET


def test_entry_defaults_come_from_flags_then_fleet() -> None:
    fleet = FleetConfig(
        neurons=[
            NeuronEntry(
                name="beast",
                endpoint="http://beast.internal:14141",
                ssh="root@beast.internal",
                install="pip",
                token_file=Path("/etc/helexa/fleet.token"),
            )
        ]
    )
    args = argparse.Namespace(
        host="beast.internal", name=None, ssh_user="admin", ssh_port=2222, endpoint=None,
        token_file=None, install=None, wheel=None,
    )  # fmt: skip
    entry = resolve_entry(args, fleet)
    assert entry.endpoint == "http://beast.internal:14141" and entry.install == "pip"
    assert entry.ssh == "admin@beast.internal:2222"
    other = resolve_entry(argparse.Namespace(**{**vars(args), "host": "gpu2.lan"}), fleet)
    assert other.endpoint == "http://gpu2.lan:13131" and other.install == "rpm"
    assert other.token_file == Path("/etc/helexa/fleet.token")  # the fleet's shared secret
    assert (default_name("gpu2.lan"), default_name("10.1.2.3")) == ("gpu2", "10.1.2.3")


def test_a_python_the_service_user_cannot_run_fails_before_installing(
    sshd: Sshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A per-user interpreter, as pyenv makes one: its files under a home only its owner enters.
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    subprocess.run(
        [sys.executable, "-m", "venv", "--copies", "--without-pip", str(home / "py")],
        check=True,
        timeout=120,
    )
    private_python = home / "py" / "bin" / "python"
    layout = temp_layout(tmp_path / "host")
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET)
    args = [
        "bootstrap", "127.0.0.1", "--name", "pyenvy", "--ssh-port", str(sshd.port),
        "--identity", str(sshd.client_key), "--known-hosts", str(sshd.known_hosts),
        "--accept-new-host-key", "--install", "pip", "--fleet", str(fleet),
        "--prefix", str(layout.prefix), "--config-dir", str(layout.config_dir),
        "--state-dir", str(layout.state_dir), "--unit-dir", str(layout.unit_dir),
        "--service-user", "nobody", "--python", str(private_python),
    ]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"the service user nobody cannot run {private_python}" in err
    # The path named is the first one in the way (here: home, or above it).
    assert " is mode 700 " in err and "--python PATH" in err
    assert not Path(layout.prefix).exists()  # nothing was installed
    assert fleet.read_text() == FLEET
