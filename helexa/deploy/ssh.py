"""SSH to a managed host: one asyncssh connection reused for every step on that host.

- Key auth only (an identity file, else the usual ~/.ssh keys / agent).
- Host keys are checked against a known_hosts file. An unknown host is refused
  unless `accept_new_host_key` is set, and then its key is recorded; a key that
  differs from the recorded one is always refused.
- Commands run through `sh -c`, under `sudo -n` when the remote user is not root
  (password-less sudo is checked once, up front).
- Every step has a timeout; every failure is a DeployError naming host and step,
  with the command's exit status and stderr.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import asyncssh

from helexa.errors import DeployError, HostKeyError

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts").expanduser()
CONNECT_TIMEOUT_S = 15.0
COMMAND_TIMEOUT_S = 120.0
STDERR_TAIL = 2000  # characters of stderr kept in error messages

# asyncssh.connect, or anything with its signature (a tunnel, a jump host).
ConnectFactory = Callable[..., Awaitable[asyncssh.SSHClientConnection]]


@dataclass(frozen=True)
class SSHTarget:
    host: str
    port: int = 22
    user: str = "root"
    identity: Path | None = None  # None = default keys and agent
    known_hosts: Path = DEFAULT_KNOWN_HOSTS
    accept_new_host_key: bool = False
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    command_timeout_s: float = COMMAND_TIMEOUT_S

    @property
    def label(self) -> str:
        """`user@host[:port]`, as shown in messages."""
        port = f":{self.port}" if self.port != 22 else ""
        return f"{self.user}@{self.host}{port}"

    @classmethod
    def parse(cls, spec: str, **options: Any) -> SSHTarget:
        """From fleet.toml's `ssh = "user@host[:port]"`; keyword options override."""
        user, _, hostport = spec.rpartition("@")
        host, sep, port = hostport.rpartition(":")
        if not sep or not port.isdigit():
            host, port = hostport, ""
        values: dict[str, Any] = {"host": host}
        if user:
            values["user"] = user
        if port:
            values["port"] = int(port)
        return cls(**{**values, **options})


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def known_hosts_pattern(host: str, port: int) -> str:
    """The host field of a known_hosts line (OpenSSH brackets non-default ports)."""
    return host if port == 22 else f"[{host}]:{port}"


def sudo_wrap(command: str, use_sudo: bool) -> str:
    """The remote command line: `sh -c` under `sudo -n` when needed (never prompts)."""
    if not use_sudo:
        return command
    return f"sudo -n -- sh -c {shlex.quote(command)}"


class _KeyCheckingClient(asyncssh.SSHClient):
    """Records the key the server offered; trusts it only on an allowed first contact."""

    def __init__(self, trust_unknown: bool) -> None:
        self.trust_unknown = trust_unknown
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key
        return self.trust_unknown


def _fingerprint(key: asyncssh.SSHKey | None) -> str:
    return key.get_fingerprint("sha256") if key is not None else "(none offered)"


@dataclass
class HostConnection:
    """An open connection to one host; an async context manager that closes it."""

    target: SSHTarget
    conn: asyncssh.SSHClientConnection
    use_sudo: bool = False
    uploads: int = field(default=0, init=False)

    async def __aenter__(self) -> HostConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self.conn.close()
        await self.conn.wait_closed()

    def error(self, step: str, message: str) -> DeployError:
        return DeployError(f"{self.target.label}: {step}: {message}")

    async def run(
        self,
        command: str,
        *,
        step: str,
        check: bool = True,
        privileged: bool = True,
        timeout_s: float | None = None,
        stdin: str | None = None,
    ) -> CommandResult:
        """Run `command` with `sh -c` semantics; `check` raises on a non-zero exit."""
        timeout = timeout_s if timeout_s is not None else self.target.command_timeout_s
        line = sudo_wrap(command, self.use_sudo and privileged)
        try:
            completed = await asyncio.wait_for(
                self.conn.run(line, check=False, input=stdin, timeout=timeout),
                timeout + 5.0,  # backstop; asyncssh's own timeout kills the channel first
            )
        except (TimeoutError, asyncssh.TimeoutError):
            raise self.error(step, f"timed out after {timeout:g}s: {command}") from None
        except (OSError, asyncssh.Error) as exc:
            raise self.error(step, f"{command}: {exc}") from exc
        result = CommandResult(
            command=command,
            exit_status=completed.exit_status if completed.exit_status is not None else -1,
            stdout=_text(completed.stdout),
            stderr=_text(completed.stderr),
        )
        if check and not result.ok:
            detail = result.stderr.strip()[-STDERR_TAIL:] or result.stdout.strip()[-STDERR_TAIL:]
            raise self.error(step, f"`{command}` exited {result.exit_status}: {detail}")
        return result

    async def upload(
        self,
        data: bytes,
        path: PurePosixPath | str,
        *,
        step: str,
        mode: int = 0o644,
        owner: str | None = None,
        group: str | None = None,
    ) -> None:
        """Write `data` to `path` atomically with mode/owner (parents created).

        SFTP runs as the login user, so the bytes go to a private temp file first and
        `install` (under sudo when needed) moves them into place.
        """
        dest = PurePosixPath(path)
        staging = PurePosixPath(f"/tmp/.helexa-upload-{secrets.token_hex(8)}")
        try:
            async with asyncio.timeout(self.target.command_timeout_s):
                async with self.conn.start_sftp_client() as sftp:
                    attrs = asyncssh.SFTPAttrs(permissions=0o600)
                    async with sftp.open(str(staging), "wb", attrs) as remote:
                        await remote.write(data)
        except TimeoutError:
            raise self.error(step, f"upload of {dest} timed out") from None
        except (OSError, asyncssh.Error) as exc:
            raise self.error(step, f"upload of {dest}: {exc}") from exc
        ownership = "".join(
            f" {flag} {shlex.quote(name)}" for flag, name in (("-o", owner), ("-g", group)) if name
        )
        temp = shlex.quote(f"{dest}.helexa-new")
        await self.run(
            f"install -D -m {mode:04o}{ownership} {staging} {temp}"
            f" && mv -f {temp} {shlex.quote(str(dest))}; rc=$?; rm -f {staging}; exit $rc",
            step=step,
        )
        self.uploads += 1


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _read_known_hosts(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _host_is_known(known_hosts: str, target: SSHTarget, addresses: list[str]) -> bool:
    """Whether known_hosts has a key for the host's name or any of its addresses.

    As OpenSSH does: a host known only by its IP is known (asyncssh matches the
    address when it checks the key), so `accept_new_host_key` must not record
    whatever key it is offered for it.
    """
    if not known_hosts.strip():
        return False
    entries = asyncssh.import_known_hosts(known_hosts)
    port = target.port if target.port != 22 else None
    for address in addresses or [""]:
        trusted_keys, trusted_cas, *_ = entries.match(target.host, address, port)
        if trusted_keys or trusted_cas:
            return True
    return False


async def _addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to ([] when it does not: the connect says so)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def record_host_key(path: Path, target: SSHTarget, key: asyncssh.SSHKey) -> None:
    """Append `key` for the target to known_hosts (created 0600 with its directory)."""
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    line = f"{known_hosts_pattern(target.host, target.port)} {algorithm} {blob}\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = _read_known_hosts(path)
    prefix = "" if not existing or existing.endswith("\n") else "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(prefix + line)


async def connect(
    target: SSHTarget,
    *,
    factory: ConnectFactory = asyncssh.connect,
    sudo: bool | None = None,
) -> HostConnection:
    """Open the connection, verify the host key, and settle sudo (None = when not root)."""
    known_text = _read_known_hosts(target.known_hosts)
    addresses = await _addresses(target.host, target.port)
    known = _host_is_known(known_text, target, addresses)
    client = _KeyCheckingClient(trust_unknown=target.accept_new_host_key and not known)
    options: dict[str, Any] = {
        "port": target.port,
        "username": target.user,
        "known_hosts": asyncssh.import_known_hosts(known_text),
        "client_factory": lambda: client,
        "config": None,  # ~/.ssh/config must not change what a fleet entry says
        "connect_timeout": target.connect_timeout_s,
    }
    if target.identity is not None:
        options.update(client_keys=[str(target.identity)], agent_path=None)
    step = "connect"
    try:
        conn = await asyncio.wait_for(
            factory(target.host, **options), target.connect_timeout_s + 5.0
        )
    except asyncssh.HostKeyNotVerifiable:
        fingerprint = _fingerprint(client.offered)
        if known:
            raise HostKeyError(
                f"{target.label}: {step}: host key {fingerprint} does NOT match "
                f"{target.known_hosts}; refusing (the host was reinstalled, or someone is "
                "in the middle). Remove the old line yourself once you trust the new key."
            ) from None
        raise HostKeyError(
            f"{target.label}: {step}: unknown host key {fingerprint} (not in "
            f"{target.known_hosts}); check it and rerun with --accept-new-host-key"
        ) from None
    except asyncssh.PermissionDenied as exc:
        raise DeployError(
            f"{target.label}: {step}: key authentication refused "
            f"(identity {target.identity or 'default keys'}): {exc.reason}"
        ) from None
    except TimeoutError:
        raise DeployError(
            f"{target.label}: {step}: timed out after {target.connect_timeout_s:g}s"
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise DeployError(f"{target.label}: {step}: {exc}") from exc
    if client.trust_unknown and client.offered is not None:
        record_host_key(target.known_hosts, target, client.offered)
    host = HostConnection(target, conn)
    try:
        await _settle_sudo(host, sudo)
    except BaseException:
        await host.close()
        raise
    return host


async def _settle_sudo(host: HostConnection, sudo: bool | None) -> None:
    if sudo is None:
        uid = await host.run("id -u", step="check user", privileged=False)
        sudo = uid.stdout.strip() != "0"
    if not sudo:
        return
    probe = await host.run("sudo -n true", step="check sudo", privileged=False, check=False)
    if not probe.ok:
        raise host.error(
            "check sudo",
            f"{host.target.user} needs password-less sudo here, and "
            f"`sudo -n true` exited {probe.exit_status}: {probe.stderr.strip()}; "
            "add a NOPASSWD sudoers rule or connect as root",
        )
    host.use_sudo = True
