"""helexa.deploy.ssh against a real OpenSSH sshd on loopback."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from helexa.deploy.ssh import SSHTarget, connect, known_hosts_pattern, sudo_wrap
from helexa.errors import DeployError, HostKeyError
from tests.deploy.sshd import Sshd, keygen, run_sshd


async def test_unknown_host_key_is_refused_without_the_flag(sshd: Sshd) -> None:
    with pytest.raises(HostKeyError, match=r"unknown host key SHA256:.*--accept-new-host-key"):
        await connect(sshd.target())
    assert not sshd.known_hosts.exists()


async def test_accept_new_host_key_records_it_then_plain_connects_work(sshd: Sshd) -> None:
    async with await connect(sshd.target(accept_new_host_key=True)) as host:
        result = await host.run("echo hello; echo oops >&2", step="echo")
    assert (result.exit_status, result.stdout, result.stderr) == (0, "hello\n", "oops\n")
    recorded = sshd.known_hosts.read_text()
    assert recorded.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert sshd.host_key.with_suffix(".pub").read_text().split()[1] in recorded
    async with await connect(sshd.target()) as host:  # now known: no flag needed
        assert (await host.run("id -u", step="id")).stdout == "0\n"
    assert sshd.known_hosts.read_text() == recorded  # not recorded twice


async def test_changed_host_key_is_refused_even_with_the_flag(tmp_path: Path) -> None:
    with run_sshd(tmp_path / "first") as first:
        await (await connect(first.target(accept_new_host_key=True))).close()
        known_hosts = first.known_hosts
        port_line = known_hosts.read_text().replace(str(first.port), "PORT")
    with run_sshd(tmp_path / "second") as second:  # a fresh host key
        second.known_hosts.write_text(port_line.replace("PORT", str(second.port)))
        before = second.known_hosts.read_text()
        with pytest.raises(HostKeyError, match="does NOT match"):
            await connect(second.target(accept_new_host_key=True))
        assert second.known_hosts.read_text() == before


async def test_a_host_known_by_its_address_only_is_not_new(tmp_path: Path) -> None:
    """known_hosts has 127.0.0.1's key; the target says `localhost`, which resolves to it.
    A different key there is a changed key (as OpenSSH sees it), never recorded as new."""
    with run_sshd(tmp_path / "first") as first:
        await (await connect(first.target(accept_new_host_key=True))).close()
        port_line = first.known_hosts.read_text().replace(str(first.port), "PORT")
    with run_sshd(tmp_path / "second") as second:  # a fresh host key
        second.known_hosts.write_text(port_line.replace("PORT", str(second.port)))
        before = second.known_hosts.read_text()
        with pytest.raises(HostKeyError, match="does NOT match"):
            await connect(second.target(host="localhost", accept_new_host_key=True))
        assert second.known_hosts.read_text() == before


async def test_a_key_the_server_does_not_accept_names_host_and_step(sshd: Sshd) -> None:
    stranger = keygen(sshd.root / "stranger")
    target = sshd.target(accept_new_host_key=True, identity=stranger)
    with pytest.raises(DeployError, match=r"root@127\.0\.0\.1:\d+: connect: key auth"):
        await connect(target)


async def test_failing_command_keeps_status_and_stderr(sshd: Sshd) -> None:
    async with await connect(sshd.target(accept_new_host_key=True)) as host:
        quiet = await host.run("echo bad >&2; exit 3", step="probe", check=False)
        assert (quiet.exit_status, quiet.stderr) == (3, "bad\n")
        expected = r"127\.0\.0\.1:\d+: install package: .* exited 3: bad"
        with pytest.raises(DeployError, match=expected):
            await host.run("echo bad >&2; exit 3", step="install package")


async def test_command_timeout_is_an_error_and_the_connection_survives(sshd: Sshd) -> None:
    async with await connect(sshd.target(accept_new_host_key=True)) as host:
        started = time.monotonic()
        with pytest.raises(DeployError, match=r"wait: timed out after 0\.5s"):
            await host.run("sleep 30", step="wait", timeout_s=0.5)
        assert time.monotonic() - started < 5
        assert (await host.run("echo still here", step="after")).stdout == "still here\n"


async def test_connect_timeout_when_nothing_answers(tmp_path: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts TCP, never speaks SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = SSHTarget(
            host="127.0.0.1",
            port=silent.getsockname()[1],
            known_hosts=tmp_path / "kh",
            connect_timeout_s=0.5,
        )
        with pytest.raises(DeployError, match=r"connect: timed out after 0\.5s"):
            await connect(target)


async def test_upload_sets_mode_and_owner_atomically(sshd: Sshd, tmp_path: Path) -> None:
    dest = tmp_path / "etc" / "helexa" / "neuron.toml"
    async with await connect(sshd.target(accept_new_host_key=True)) as host:
        await host.upload(b"x = 1\n", str(dest), step="write", mode=0o640, owner="root")
        await host.upload(b"x = 2\n", str(dest), step="write", mode=0o640, group="root")
        assert host.uploads == 2
    assert dest.read_text() == "x = 2\n"
    assert dest.stat().st_mode & 0o777 == 0o640
    assert dest.stat().st_uid == 0
    assert [p.name for p in dest.parent.iterdir()] == ["neuron.toml"]  # no temp left


FAILING_SUDO = "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"
WORKING_SUDO = '#!/bin/sh\n[ "$1" = -n ] && shift\n[ "$1" = -- ] && shift\nexec "$@"\n'


def sshd_with_sudo(root: Path, script: str) -> contextlib.AbstractContextManager[Sshd]:
    """An sshd whose sessions find `script` as `sudo` first on PATH, whatever this
    machine has (or lacks) as sudo: the test makes the condition it asserts."""
    tools = root / "tools"
    tools.mkdir(parents=True)
    (tools / "sudo").write_text(script)
    (tools / "sudo").chmod(0o755)
    return run_sshd(root / "sshd", extra_config=f"SetEnv PATH={tools}:/usr/sbin:/usr/bin:/bin\n")


async def test_root_needs_no_sudo_and_forced_sudo_fails_clearly(tmp_path: Path) -> None:
    with sshd_with_sudo(tmp_path, FAILING_SUDO) as sshd:
        async with await connect(sshd.target(accept_new_host_key=True)) as host:
            assert host.use_sudo is False
        expected = "check sudo: root needs password-less sudo here, and `sudo -n true` exited 1"
        with pytest.raises(DeployError, match=expected):
            await connect(sshd.target(), sudo=True)


async def test_forced_sudo_works_where_sudo_does(tmp_path: Path) -> None:
    with sshd_with_sudo(tmp_path, WORKING_SUDO) as sshd:
        async with await connect(sshd.target(accept_new_host_key=True), sudo=True) as host:
            assert host.use_sudo is True
            result = await host.run("id -u", step="id")
            assert result.stdout.strip() == "0"


def test_sudo_wrap_quotes_the_whole_command() -> None:
    assert sudo_wrap("echo 'a b' && id", use_sudo=False) == "echo 'a b' && id"
    assert sudo_wrap("echo 'a b' && id", use_sudo=True) == (
        "sudo -n -- sh -c 'echo '\"'\"'a b'\"'\"' && id'"
    )


def test_target_parse_and_known_hosts_pattern() -> None:
    target = SSHTarget.parse("admin@beast.internal:2222", identity=Path("/k"))
    assert (target.user, target.host, target.port, target.identity) == (
        "admin",
        "beast.internal",
        2222,
        Path("/k"),
    )
    assert SSHTarget.parse("beast").label == "root@beast"
    assert known_hosts_pattern("beast", 22) == "beast"
    assert known_hosts_pattern("beast", 2222) == "[beast]:2222"
