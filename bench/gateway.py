"""Gateway overhead: clients -> `helexa serve` -> stub upstream, vs clients -> stub directly.

A third contestant, the minimal proxy (starlette + one aiohttp session, no
routing, no metrics: DESIGN section 6's reference), runs on the same machine
in the same run, so the price of helexa's own work is visible apart from
what any Python proxy costs on this box.

The stub is a minimal OpenAI-compatible aiohttp server in its own process
(`python -m bench.gateway stub PORT`), registered in a temporary fleet.toml
as a `kind = "openai"` neuron; the gateway is a real `helexa serve`
subprocess. 32 concurrent clients (aiohttp) send non-streaming and
streaming chat completions; we report p50/p99 latency, requests/s and time
to first chunk, and the gateway/direct and gateway/minimal ratios. Each side
runs twice (full mode) and keeps its better run, so a burst of background
load on the machine does not decide the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from helexa.testing.neuron_proc import free_port

CLIENTS = 32
MODEL = "stub/model"
STREAM_PIECES = 8
# Reference on this machine (DESIGN section 6): a minimal starlette+aiohttp proxy.
REFERENCE = "minimal starlette+aiohttp proxy: ~5,900 req/s non-streaming, +4.3 ms p50"


@dataclass(frozen=True)
class RunStats:
    requests: int
    seconds: float
    latencies: list[float]
    first_chunk: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def p(self, q: float, values: list[float] | None = None) -> float:
        data = sorted(values if values is not None else self.latencies)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(q * len(data)))]


# --- the stub upstream -------------------------------------------------------------


def _chunk(payload: dict[str, object]) -> bytes:
    base = {"id": "b", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    return b"data: " + json.dumps(base | payload).encode() + b"\n\n"


_COMPLETION = json.dumps(
    {
        "id": "b",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
_STREAM = (
    _chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    + b"".join(
        _chunk({"choices": [{"index": 0, "delta": {"content": f"w{i} "}}]})
        for i in range(STREAM_PIECES)
    )
    + _chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + _chunk({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": STREAM_PIECES}})
    + b"data: [DONE]\n\n"
)


async def _stub_chat(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    if b'"stream": true' not in body and b'"stream":true' not in body:
        return web.Response(body=_COMPLETION, content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(_STREAM)
    await resp.write_eof()
    return resp


async def _stub_models(_: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


def run_stub(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _stub_chat)
    app.router.add_get("/v1/models", _stub_models)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def run_minimal_proxy(port: int, upstream: str) -> None:
    """The reference: starlette + a shared aiohttp session, nothing else."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    sessions: list[aiohttp.ClientSession] = []

    async def chat(request: Request) -> Response:
        if not sessions:
            sessions.append(aiohttp.ClientSession())
        body = await request.body()
        resp = await sessions[0].post(
            upstream, data=body, headers={"Content-Type": "application/json"}
        )
        if b'"stream": true' not in body:
            data = await resp.read()
            return Response(data, status_code=resp.status, media_type="application/json")

        async def relay() -> AsyncIterator[bytes]:
            async for chunk in resp.content.iter_any():
                yield chunk
            resp.release()

        return StreamingResponse(relay(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop"
    )


# --- load generation ------------------------------------------------------------


async def _load(url: str, total: int, stream: bool) -> RunStats:
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ).encode()
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    first_chunk: list[float] = []
    remaining = total
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    if stream:
                        await resp.content.readany()
                        first_chunk.append(time.perf_counter() - started)
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: HTTP {resp.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        seconds = time.perf_counter() - started
    return RunStats(total, seconds, latencies, first_chunk)


async def _best_of(rounds: int, url: str, total: int, stream: bool) -> RunStats:
    results = [await _load(url, total, stream) for _ in range(rounds)]
    return max(results, key=lambda r: r.rps)


# --- processes ------------------------------------------------------------------


async def _wait_http(
    url: str, process: subprocess.Popen[bytes], within: float = 60.0, ok: int = 200
) -> None:
    """Poll `url` until 200 (the processes offer nothing to await); fail if `process` exits."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
            try:
                async with session.get(url) as resp:
                    if resp.status == ok:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer")
            await asyncio.sleep(0.1)


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def run(quick: bool) -> str:
    total = 1000 if quick else 5000
    rounds = 1 if quick else 2
    stub_port, api_port, metrics_port, minimal_port = (free_port() for _ in range(4))
    with tempfile.TemporaryDirectory(prefix="helexa-bench-") as tmp:
        work = Path(tmp)
        (work / "fleet.toml").write_text(
            f'[gateway]\nlisten = "127.0.0.1:{api_port}"\n'
            f'metrics_listen = "127.0.0.1:{metrics_port}"\n'
            f'[[neurons]]\nname = "stub"\nkind = "openai"\n'
            f'endpoint = "http://127.0.0.1:{stub_port}/v1"\nmodels = ["{MODEL}"]\n'
        )
        (work / "models.toml").write_text("")
        stub = _spawn(
            [sys.executable, "-m", "bench.gateway", "stub", str(stub_port)], work / "stub.log"
        )
        upstream = f"http://127.0.0.1:{stub_port}/v1/chat/completions"
        minimal = _spawn(
            [sys.executable, "-m", "bench.gateway", "minimal", str(minimal_port), upstream],
            work / "minimal.log",
        )
        gateway = _spawn(
            [
                sys.executable,
                "-m",
                "helexa",
                "serve",
                "--fleet",
                str(work / "fleet.toml"),
                "--models",
                str(work / "models.toml"),
                "--log-level",
                "WARNING",
            ],
            work / "serve.log",
        )
        try:
            await _wait_http(f"http://127.0.0.1:{stub_port}/v1/models", stub)
            await _wait_http(f"http://127.0.0.1:{api_port}/v1/models/{MODEL}", gateway)
            sides = {
                "direct": upstream,
                "minimal proxy": f"http://127.0.0.1:{minimal_port}/v1/chat/completions",
                "gateway": f"http://127.0.0.1:{api_port}/v1/chat/completions",
            }
            await _wait_http(f"http://127.0.0.1:{minimal_port}/docs-missing", minimal, ok=404)
            for url in sides.values():  # warm-up: connections, caches
                await _load(url, 200, stream=False)
            results: dict[tuple[str, bool], RunStats] = {}
            for stream in (False, True):
                for name, url in sides.items():
                    results[(name, stream)] = await _best_of(rounds, url, total, stream)
        finally:
            for process in (gateway, minimal, stub):
                _stop(process)
    return _render(results, total, quick)


def _render(results: dict[tuple[str, bool], RunStats], total: int, quick: bool) -> str:
    ms = 1000.0
    lines = [
        "## Gateway overhead",
        "",
        f"{CLIENTS} concurrent clients, {total} chat completions per run"
        + (" (quick)" if quick else ", best of 2 runs per side")
        + "; stub OpenAI upstream in its own process; gateway = `helexa serve` with the stub "
        'as a `kind = "openai"` neuron.',
        "",
        "| mode | side | req/s | p50 ms | p99 ms | first chunk p50 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for stream in (False, True):
        for side in ("direct", "minimal proxy", "gateway"):
            r = results[(side, stream)]
            first = f"{r.p(0.5, r.first_chunk) * ms:.1f}" if stream else "-"
            lines.append(
                f"| {'stream' if stream else 'non-stream'} | {side} | {r.rps:,.0f} | "
                f"{r.p(0.5) * ms:.1f} | {r.p(0.99) * ms:.1f} | {first} |"
            )
    lines += [
        "",
        "| mode | gateway/direct req/s | gateway/minimal req/s | added p50 ms vs direct "
        "| vs minimal | added p99 ms vs direct |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for stream in (False, True):
        d, m, g = (results[(side, stream)] for side in ("direct", "minimal proxy", "gateway"))
        lines.append(
            f"| {'stream' if stream else 'non-stream'} | {g.rps / d.rps:.2f} | "
            f"{g.rps / m.rps:.2f} | {(g.p(0.5) - d.p(0.5)) * ms:+.1f} | "
            f"{(g.p(0.5) - m.p(0.5)) * ms:+.1f} | {(g.p(0.99) - d.p(0.99)) * ms:+.1f} |"
        )
    lines += ["", f"Reference measured earlier on this machine (idle): {REFERENCE}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "stub":
        run_stub(int(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "minimal":
        run_minimal_proxy(int(sys.argv[2]), sys.argv[3])
    else:
        print(asyncio.run(run(quick="--quick" in sys.argv)))
