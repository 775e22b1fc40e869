"""plan_host / apply_host over a real sshd: diffs of changed files, then convergence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from helexa.config.fleet import NeuronEntry
from helexa.deploy.hostplan import render_host_actions
from helexa.deploy.hostsync import apply_host, plan_host
from helexa.deploy.ssh import connect
from tests.deploy.hosts import temp_layout
from tests.deploy.sshd import Sshd


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _read(path: Path) -> str:
    return path.read_text()


async def test_plan_shows_a_diff_and_apply_writes_the_files(sshd: Sshd, tmp_path: Path) -> None:
    layout = temp_layout(tmp_path / "host")
    entry = NeuronEntry(name="n1", endpoint="http://127.0.0.1:14141", ssh="root@127.0.0.1")
    config = Path(layout.neuron_toml)
    _write(config, '[neuron]\nlisten = "127.0.0.1:13131"\n')
    said: list[str] = []
    async with await connect(sshd.target(accept_new_host_key=True)) as host:
        host_plan = await plan_host(host, entry, layout, version="0.0.0", token=None)
        kinds = [a.kind for a in host_plan.actions]
        # No venv in the temp prefix: install comes first, restart last.
        assert kinds[0] == "install" and kinds[-1] == "restart"
        text = render_host_actions(host_plan.actions)
        assert f"~ write_file {config} on n1: content differs" in text
        assert '-listen = "127.0.0.1:13131"' in text and '+listen = "127.0.0.1:14141"' in text
        files_only = tuple(a for a in host_plan.actions if a.kind == "write_file")
        await apply_host(host, replace(host_plan, actions=files_only), said.append)
        again = await plan_host(host, entry, layout, version="0.0.0", token=None)
    assert [a.kind for a in again.actions] == ["install", "restart"]  # the files converged
    assert 'listen = "127.0.0.1:14141"' in _read(config)
    assert len(said) == len(files_only)
