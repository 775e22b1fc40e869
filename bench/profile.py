"""Profile `helexa serve` under the gateway bench's load: `python -m bench.profile`.

Runs the gateway under cProfile (stdlib: nothing to install) in front of the
stub, drives it with 32 closed-loop clients (non-streaming, then streaming),
stops it cleanly so the profile is written, and prints the top functions by
own time and by cumulative time. docs/benchmarks.md quotes its output where a
target is bounded by the gateway's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import pstats
import sys
import tempfile
from pathlib import Path

from bench.gateway import Cell, target_for
from bench.loadgen import drive
from bench.procs import Contestant, gateway_fleet_toml, spawn, start_stub, stop, wait_http
from bench.upstream import MODEL
from helexa.testing.neuron_proc import free_port


async def profile(seconds: float, top: int, match: str) -> str:
    with tempfile.TemporaryDirectory(prefix="helexa-bench-profile-") as tmp:
        work = Path(tmp)
        stub = await start_stub(work)
        api_port, metrics_port = free_port(), free_port()
        (work / "fleet.toml").write_text(gateway_fleet_toml(api_port, metrics_port, stub))
        (work / "models.toml").write_text("")
        out = work / "gateway.prof"
        args = ["-m", "cProfile", "-o", str(out), "-m", "helexa", "serve"]
        args += ["--fleet", str(work / "fleet.toml"), "--models", str(work / "models.toml")]
        process = spawn([sys.executable, *args, "--log-level", "WARNING"], work / "gateway.log")
        try:
            gateway = Contestant("helexa", f"http://127.0.0.1:{api_port}", process)
            await wait_http(f"{gateway.base_url}/v1/models/{MODEL}", process)
            served = []
            for route in ("openai", "anthropic"):
                for stream in (False, True):
                    target = target_for(gateway, Cell(route, stream, 32))
                    assert target is not None
                    stats = await drive(target, clients=32, seconds=seconds)
                    served.append(f"{route} stream={stream}: {stats.rps:.0f} req/s")
        finally:
            stop(stub.process) if stub.process else None
            stop(process)
        text = io.StringIO()
        stats_file = pstats.Stats(str(out), stream=text)
        # Startup (imports) would dominate an unfiltered listing: keep the request path's modules.
        stats_file.sort_stats("tottime").print_stats(match, top)
        stats_file.sort_stats("cumulative").print_stats(match, top)
        return "\n".join(served) + "\n" + text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per route and mode")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--match", default="helexa|starlette|uvicorn|aiohttp|json|prometheus", help="path regex"
    )
    args = parser.parse_args()
    print(asyncio.run(profile(args.seconds, args.top, args.match)))


if __name__ == "__main__":
    main()
