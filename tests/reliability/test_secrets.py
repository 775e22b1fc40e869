"""Secrets stay secret: tokens never logged, secret files 0640 or stricter, SSH host
keys verified by default, an open gateway says so in /health."""

from __future__ import annotations

import argparse
import json
import logging
import textwrap
from pathlib import Path

import httpx
import pytest

from helexa.cli import bootstrap_cmd
from helexa.config import NeuronEntry
from helexa.deploy.facts import HostFacts, parse_os_release
from helexa.deploy.hostplan import SECRET_MASK, desired_host, diff_host, render_host_actions
from helexa.deploy.layout import HostLayout
from helexa.deploy.ssh import SSHTarget
from helexa.gateway.core import Gateway
from helexa.testing.neuron_proc import TINY_MODEL_ID, NeuronProcess, chat_body
from tests.gateway.harness import write_configs
from tests.reliability.stack import GATEWAY_KEY, NEURON_TOKEN, keyed_stack

WRONG = "wrong-secret-4e9d1c"


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    lines = [record.getMessage() for record in caplog.records]
    lines += [caplog.text]  # formatted, tracebacks included
    return "\n".join(lines)


async def test_tokens_never_logged_in_process(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with keyed_stack(tmp_path, tiny_model_dir) as stack:
        async with stack.gateway_http() as http:
            assert (await http.post("/v1/chat/completions", json=chat_body())).status_code == 200
            bad = await http.post("/v1/chat/completions", content=b"{", headers={"x": "y"})
            assert bad.status_code == 400
        for key in (WRONG, None):
            async with stack.gateway_http(key=key) as http:
                assert (await http.get("/admin/fleet")).status_code == 401
            async with stack.neuron_http(token=key) as http:
                assert (await http.get("/models")).status_code == 401
        # The gateway's token for the neuron goes stale: polls fail and are logged.
        (tmp_path / "fleet.token").write_text(WRONG)
        await stack.gateway.gateway.poller.poll_once()
    logged = everything_logged(caplog)
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for secret in (NEURON_TOKEN, GATEWAY_KEY, WRONG):
        assert secret not in logged


async def test_neuron_daemon_never_logs_its_token(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "fleet.token").write_text(NEURON_TOKEN + "\n")
    config = tmp_path / "neuron.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [neuron]
            name = "n"
            offline = true
            token_file = "{tmp_path / "fleet.token"}"
            [devices]
            reserve_mb = 0
            """
        )
    )
    log_path = tmp_path / "neuron.log"
    daemon = NeuronProcess(config, token=NEURON_TOKEN, log_path=log_path)
    async with daemon as neuron, httpx.AsyncClient(base_url=neuron.url, timeout=60) as http:
        good = {"Authorization": f"Bearer {NEURON_TOKEN}"}
        load = {"model": TINY_MODEL_ID, "path": str(tiny_model_dir)}
        assert (await http.post("/models/load", json=load, headers=good)).status_code == 200
        response = await http.post("/v1/chat/completions", json=chat_body(), headers=good)
        assert response.status_code == 200
        missing = {"model": "nope", "path": str(tmp_path / "missing")}
        assert (await http.post("/models/load", json=missing, headers=good)).status_code >= 400
        wrong = {"Authorization": f"Bearer {WRONG}"}
        assert (await http.get("/models", headers=wrong)).status_code == 401
    logged = log_path.read_text(errors="replace")
    assert "nope" in logged, "the failed load was not logged: the check would prove nothing"
    assert NEURON_TOKEN not in logged
    assert WRONG not in logged


def _beast() -> NeuronEntry:
    return NeuronEntry.model_validate(
        {
            "name": "beast",
            "endpoint": "http://beast.internal:13131",
            "ssh": "root@beast.internal",
            "token_file": "/etc/helexa/fleet.token",
        }
    )


def test_secret_files_are_0640_or_stricter() -> None:
    layout = HostLayout()
    host = desired_host(_beast(), layout, version="1.0", systemd=True, token=NEURON_TOKEN)
    holding_secrets = [f for f in host.files if f.secret or NEURON_TOKEN in f.content]
    assert holding_secrets, "the token file is not among the managed files"
    for managed in holding_secrets:
        assert managed.secret, f"{managed.path} holds the token but is not marked secret"
        assert managed.mode & 0o137 == 0, f"{managed.path} mode {managed.mode:o} > 0640"
    neuron_toml = next(f for f in host.files if f.path == layout.neuron_toml)
    assert neuron_toml.mode & 0o137 == 0  # names the token file: for the service only


def test_plans_never_show_the_token() -> None:
    """A host whose token file differs: the plan says so without showing either token."""
    layout = HostLayout()
    host = desired_host(_beast(), layout, version="1.0", systemd=True, token=NEURON_TOKEN)
    facts = HostFacts(
        os=parse_os_release('ID="fedora"\nVERSION_ID="40"\n'),
        arch="x86_64",
        python=(3, 12, 0),
        systemd=True,
        rpm_version="1.0",
        file_hashes={"/etc/helexa/fleet.token": "0" * 64},
        unit_enabled="enabled",
        unit_active="active",
        service_user_exists=True,
    )
    actions = diff_host(host, facts, layout)
    token_writes = [a for a in actions if a.target == "/etc/helexa/fleet.token"]
    assert token_writes, "a differing token file must be rewritten"
    rendered = render_host_actions(actions) + json.dumps([a.to_json() for a in actions])
    assert NEURON_TOKEN not in rendered
    assert SECRET_MASK in rendered


def test_ssh_host_keys_are_verified_by_default() -> None:
    assert SSHTarget(host="beast").accept_new_host_key is False
    parser = argparse.ArgumentParser()
    bootstrap_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["bootstrap", "beast.internal"])
    assert args.accept_new_host_key is False


def test_open_gateway_warns_in_health(tmp_path: Path) -> None:
    models = f'[[models]]\nid = "{TINY_MODEL_ID}"\n'
    exposed = write_configs(tmp_path, '[gateway]\nlisten = "0.0.0.0:31313"\n', models)
    warnings = Gateway(exposed).health()["warnings"]
    assert len(warnings) == 1 and "api_keys" in warnings[0]
    keyed = '[gateway]\nlisten = "0.0.0.0:31313"\napi_keys = ["k"]\n'
    assert Gateway(write_configs(tmp_path, keyed, models)).health()["warnings"] == []
    assert Gateway(write_configs(tmp_path, "", models)).health()["warnings"] == []
