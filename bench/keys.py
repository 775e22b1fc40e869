"""Named keys on the hot path: helexa with 1,000 keys and limits on vs helexa without keys.

Two real `helexa serve` processes front the same stub upstream (bench.upstream):
one with no keys at all (open), one with a keys.toml of 1,000 named keys, each
with requests/tokens per minute and a concurrency cap; the load generator
sends one of those keys, whose limits are high enough never to refuse (what is
measured is the cost of checking and counting, not of refusing). Rounds are
interleaved so background load hits both alike. Target: keyed >= 0.9x open.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import JSON_HEADERS, RunStats, Target, drive, median
from bench.procs import (
    Contestant,
    ProcessUsage,
    free_port,
    gateway_fleet_toml,
    python_module,
    spawn,
    start_stub,
    stop,
    wait_http,
)
from bench.upstream import MODEL
from helexa.config import Config, FleetConfig, ModelsConfig
from helexa.config.keys import KeysConfig, hash_key
from helexa.config.loader import parse_toml, validate
from helexa.gateway.keys import KeyRing, Principal, Ticket, authenticate
from helexa.gateway.proxy import ResponseStats
from helexa.gateway.usage import UsageBook

KEY_COUNT = 1000
BENCH_KEY = "hx-bench-key-0500"
CLIENTS = 32
JSON_HEADER = (b"content-type", b"application/json")
TARGET = 0.9
# Limits that hold on every key but never refuse at bench rates.
LIMITS = "requests_per_minute = 100000000\ntokens_per_minute = 100000000\nmax_concurrent = 1000\n"


@dataclass(frozen=True)
class Cell:
    route: str
    stream: bool

    @property
    def label(self) -> str:
        route = "OpenAI chat" if self.route == "openai" else "Anthropic Messages"
        return f"{route}, {'streaming' if self.stream else 'non-streaming'}, {CLIENTS} clients"


CELLS = (Cell("openai", False), Cell("openai", True), Cell("anthropic", True))


def keys_toml(count: int) -> str:
    """`count` keys with limits; key i is hx-bench-key-<i>, each allowed every model."""
    return "".join(
        f'[[keys]]\nname = "team-{i:04d}"\nsha256 = "{hash_key(f"hx-bench-key-{i:04d}")}"\n'
        f'models = ["vendor/*", "{MODEL}"]\n{LIMITS}\n'
        for i in range(count)
    )


def write_files(work: Path, stub: Contestant, keys: int) -> tuple[int, Path, Path]:
    work.mkdir()
    api_port, metrics_port = free_port(), free_port()
    fleet, models = work / "fleet.toml", work / "models.toml"
    fleet.write_text(gateway_fleet_toml(api_port, metrics_port, stub))
    models.write_text("")
    if keys:
        (work / "keys.toml").write_text(keys_toml(keys))
    return api_port, fleet, models


async def start(work: Path, stub: Contestant, name: str, keys: int) -> Contestant:
    api_port, fleet, models = write_files(work, stub, keys)
    args = python_module(
        "helexa", "serve", "--fleet", str(fleet), "--models", str(models), "--log-level", "WARNING"
    )
    process = spawn(args, work / "gateway.log")
    base = f"http://127.0.0.1:{api_port}"
    await wait_http(f"{base}/v1/models/{MODEL}", process, ok=401 if keys else 200)
    return Contestant(name, base, process)


def target(contestant: Contestant, cell: Cell) -> Target:
    # Both get the key header, so both parse the same bytes.
    headers = {**JSON_HEADERS, "authorization": f"Bearer {BENCH_KEY}"}
    messages = [{"role": "user", "content": "hi"}]
    if cell.route == "openai":
        body: dict[str, object] = {"model": MODEL, "messages": messages}
        path = "/v1/chat/completions"
    else:
        body = {"model": MODEL, "max_tokens": 64, "messages": messages}
        headers |= {"anthropic-version": "2023-06-01"}
        path = "/v1/messages"
    if cell.stream:
        body["stream"] = True
    return Target(f"{contestant.base_url}{path}", json.dumps(body).encode(), cell.stream, headers)


async def run(quick: bool) -> str:
    rounds = 1 if quick else 3
    seconds = 0.3 if quick else 3.0
    runs: dict[tuple[Cell, str], list[RunStats]] = {}
    cpu: dict[tuple[Cell, str], list[float]] = {}  # gateway CPU seconds per request, per run
    with tempfile.TemporaryDirectory(prefix="helexa-bench-keys-") as tmp:
        work = Path(tmp)
        started: list[Contestant] = []
        try:
            stub = await start_stub(work)
            started.append(stub)
            started.append(await start(work / "open", stub, "no keys", 0))
            started.append(await start(work / "keyed", stub, "1,000 keys", KEY_COUNT))
            gateways = started[1:]
            for contestant in gateways:  # warm-up
                for cell in CELLS:
                    await drive(target(contestant, cell), clients=CLIENTS, seconds=0.3)
            load_before = os.getloadavg()
            for _ in range(rounds):
                for cell in CELLS:
                    for contestant in gateways:
                        assert contestant.process is not None
                        before = ProcessUsage.of(contestant.process)
                        stats = await drive(
                            target(contestant, cell), clients=CLIENTS, seconds=seconds
                        )
                        after = ProcessUsage.of(contestant.process)
                        runs.setdefault((cell, contestant.name), []).append(stats)
                        per_request = (after.cpu_seconds - before.cpu_seconds) / max(
                            1, len(stats.latencies)
                        )
                        cpu.setdefault((cell, contestant.name), []).append(per_request)
            load_after = os.getloadavg()
        finally:
            for contestant in reversed(started):
                if contestant.process is not None:
                    stop(contestant.process)
    cost = await key_path_cost(2_000 if quick else 20_000)
    return render(runs, cpu, cost, rounds, seconds, quick, (load_before, load_after))


async def key_path_cost(repeat: int) -> tuple[float, float]:
    """In-process seconds per request of the key check and of one ticket (admit + finish)
    with KEY_COUNT keys: best of 3, the least disturbed by other work."""
    config = Config(
        fleet=FleetConfig(),
        models=ModelsConfig(),
        fleet_path=Path("fleet.toml"),
        models_path=Path("models.toml"),
        keys=load_keys_text(keys_toml(KEY_COUNT)),
    )
    ring = KeyRing.build(config)
    book = UsageBook()
    stats = ResponseStats(prompt_tokens=20, completion_tokens=40)
    auth = (b"authorization", f"Bearer {BENCH_KEY}".encode())
    scope = {"path": "/v1/chat/completions", "headers": [(b"host", b"x"), JSON_HEADER, auth]}

    async def send(_: object) -> None:
        raise AssertionError("the bench key must be accepted")

    auth_best = ticket_best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeat):
            principal = await authenticate(scope, send, ring)
        auth_best = min(auth_best, (time.perf_counter() - started) / repeat)
        assert isinstance(principal, Principal)
        started = time.perf_counter()
        for _ in range(repeat):
            ticket = Ticket(principal, book, time.monotonic, "openai")
            ticket.admit(MODEL, 120)
            ticket.finish("stub", 200, stats, 0.01)
            ticket.close()
        ticket_best = min(ticket_best, (time.perf_counter() - started) / repeat)
    return auth_best, ticket_best


def load_keys_text(text: str) -> KeysConfig:
    return validate(parse_toml(text, Path("keys.toml")), KeysConfig)


def render(
    runs: dict[tuple[Cell, str], list[RunStats]],
    cpu: dict[tuple[Cell, str], list[float]],
    cost: tuple[float, float],
    rounds: int,
    seconds: float,
    quick: bool,
    load: tuple[tuple[float, ...], ...],
) -> str:
    lines = [
        "## Named keys on the hot path",
        "",
        f"helexa with {KEY_COUNT:,} named keys in keys.toml, every key with requests/tokens "
        "per minute and a concurrency cap (high enough never to refuse), vs helexa with no "
        f"keys; the same stub upstream, {CLIENTS} clients, {rounds} interleaved round(s) of "
        f"{seconds:g} s per cell. Ratio = keyed / open req/s per round, median over rounds. "
        f"Target: >= {TARGET}x. The gateway process's CPU time per request (median over "
        "rounds) is given too: on a shared, busy machine it moves far less than req/s.",
        "",
        "| cell | no keys req/s | 1,000 keys req/s | ratio | CPU us/req: no keys | "
        "1,000 keys | errors | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for cell in CELLS:
        open_runs, keyed_runs = runs[(cell, "no keys")], runs[(cell, "1,000 keys")]
        ratios = [k.rps / o.rps for k, o in zip(keyed_runs, open_runs, strict=True) if o.rps]
        ratio = median(ratios) if ratios else float("nan")
        errors = sum(r.errors for r in open_runs + keyed_runs)
        verdict = "met" if ratio >= TARGET else "missed"
        cpu_open = median(cpu[(cell, "no keys")]) * 1e6
        cpu_keyed = median(cpu[(cell, "1,000 keys")]) * 1e6
        lines.append(
            f"| {cell.label} | {median([r.rps for r in open_runs]):.0f} | "
            f"{median([r.rps for r in keyed_runs]):.0f} | {ratio:.2f}x | {cpu_open:.0f} | "
            f"{cpu_keyed:.0f} | {errors} | {verdict} |"
        )
    before, after = (", ".join(f"{x:.1f}" for x in one) for one in load)
    lines += [
        "",
        f"Load average (1, 5, 15 min) before: {before}; after: {after}.",
        "",
        f"In-process, per request, with {KEY_COUNT:,} keys (best of 3): the key check "
        f"(header, SHA-256, lookup) {cost[0] * 1e6:.1f} us; the key's ticket (model glob, "
        f"limits taken and settled, usage counted) {cost[1] * 1e6:.1f} us.",
    ]
    if quick:
        lines += ["", "_Quick run: too short for the ratios to mean much._"]
    return "\n".join(lines) + "\n"
