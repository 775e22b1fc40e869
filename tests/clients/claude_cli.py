"""Running `claude -p` against a gateway on loopback, isolated from the machine's setup,
with every request the CLI makes noted (method, path, status, headers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helexa.config import Config
from helexa.gateway.app import Gateway, build_app
from helexa.gateway.poller import PollSettings
from helexa.testing.neuron_proc import serve_in_process

CLI_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli_env(gateway_url: str, api_key: str, home: Path) -> dict[str, str]:
    """The environment docs/clients.md tells users to set, and nothing of ours: no
    ANTHROPIC_* / CLAUDE_* from the outer environment, a fresh HOME."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    return base | {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


async def run_claude(
    binary: Path, prompt: str, env: dict[str, str], cwd: Path, *args: str
) -> CliResult:
    """`claude -p PROMPT ARGS...`; killed (and reported as such) after CLI_TIMEOUT_S."""
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        "-p",
        prompt,
        *args,
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

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange = Exchange(scope["method"], scope["path"], message["status"], headers)
                self.exchanges.append(exchange)
            await send(message)

        await self.app(scope, receive, noting)


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
