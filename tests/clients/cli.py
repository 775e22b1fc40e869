"""Running a coding-agent CLI against a gateway on loopback, isolated from the machine's
setup, with every request the CLI makes noted (method, path, status, headers)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helexa.config import Config
from helexa.fleet.poller import PollSettings
from helexa.gateway.app import build_app
from helexa.gateway.core import Gateway
from helexa.testing.neuron_proc import serve_in_process

CLI_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(argv: list[str], env: dict[str, str], cwd: Path) -> CliResult:
    """Run a CLI to its end; killed (and reported as such) after CLI_TIMEOUT_S."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        err += f"\n[killed after {CLI_TIMEOUT_S:.0f} s]".encode()
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes  # the request's


class RequestLog:
    """ASGI middleware noting each request and the status it got (what a client sent)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = bytearray()

        async def reading() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                exchange = Exchange(scope["method"], scope["path"], status, headers, bytes(body))
                self.exchanges.append(exchange)
            await send(message)

        await self.app(scope, reading, noting)


@contextlib.asynccontextmanager
async def run_logged_gateway(config: Config) -> AsyncIterator[tuple[str, RequestLog]]:
    """The gateway as tests/gateway/harness runs it, behind a RequestLog."""
    gateway = Gateway(
        config,
        poll=PollSettings(interval=0.2, timeout=2.0, failure_threshold=2),
        keep_alive_interval=0.05,
    )
    logged = RequestLog(build_app(gateway))
    async with serve_in_process(logged) as url:
        yield url, logged
