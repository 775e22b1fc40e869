"""Engines side by side on the real SmolLM2-135M-Instruct GGUF (Q4_1), in one run.

- llama-server direct: the llama-server the neuron started for engine = "llama.cpp"
  (`--parallel 8 --threads 2`), asked at its own loopback port;
- through helexa: the same server process, through the neuron's relay;
- helexa's transformers engine: the same GGUF dequantized to float32 (transformers'
  GGUF loader), saved as safetensors, served by a second neuron.

Each is measured streaming over HTTP (SSE, greedy, ignore_eos so every run decodes
the same count): single-stream decode tok/s ((tokens - 1) / (last - first token))
and TTFT, and 8 concurrent streams' aggregate tok/s (all tokens / wall time).
Direct and through-helexa rounds alternate, so other work on the machine hits
both alike; medians are reported.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from helexa.testing.neuron_proc import NeuronProcess

REPO = Path(__file__).resolve().parent.parent
GGUF = REPO / ".cache" / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMA_SERVER = REPO / ".cache" / "llama.cpp" / "bin" / "llama-server"
HF_COPY = REPO / ".cache" / "models" / "smollm2-f32"
MODEL = "smollm2"
SINGLE_TOKENS = 96
CONCURRENT_TOKENS = 64
CONCURRENCY = 8
TARGET = 0.9  # through helexa / direct
PROMPT = "Write a long story about a lighthouse keeper and the sea."


@dataclass(frozen=True)
class Stream:
    ttft_s: float
    tokens: int
    decode_s: float  # first token to last

    @property
    def decode_rate(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else 0.0


async def one_stream(session: aiohttp.ClientSession, url: str, tokens: int) -> Stream:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,
        "min_tokens": tokens,  # helexa's engine name for the same thing
        "stream": True,
    }
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        async for raw in response.content:
            line = raw.strip()
            if not line.startswith(b"data: {"):
                continue
            choices = json.loads(line[6:]).get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                count += 1
    return Stream(first - started, count, last - first)


async def concurrent(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    streams = await asyncio.gather(
        *(one_stream(session, url, CONCURRENT_TOKENS) for _ in range(CONCURRENCY))
    )
    return sum(s.tokens for s in streams) / (time.perf_counter() - started)


@dataclass
class Measured:
    decode: list[float]
    ttft: list[float]
    aggregate: list[float]

    def row(self, name: str) -> str:
        return (
            f"| {name} | {statistics.median(self.decode):.1f} "
            f"({min(self.decode):.1f}–{max(self.decode):.1f}) | "
            f"{statistics.median(self.ttft) * 1000:.0f} | "
            f"{statistics.median(self.aggregate):.1f} "
            f"({min(self.aggregate):.1f}–{max(self.aggregate):.1f}) |"
        )


async def measure_round(session: aiohttp.ClientSession, url: str, into: Measured) -> None:
    single = await one_stream(session, url, SINGLE_TOKENS)
    into.decode.append(single.decode_rate)
    into.ttft.append(single.ttft_s)
    into.aggregate.append(await concurrent(session, url))


def neuron_toml(work: Path) -> Path:
    path = work / "neuron.toml"
    path.write_text(
        "[neuron]\noffline = true\nmax_in_flight = 8\ntorch_threads = 2\n"
        f'[devices]\nreserve_mb = 0\n[engines]\nllama_server = "{LLAMA_SERVER}"\n'
    )
    return path


def llama_server_port(neuron_pid: int) -> int:
    """The port of the llama-server the neuron started (its child, found in /proc)."""
    from helexa.neuron.engines.process import descendants

    for pid in descendants(neuron_pid):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if argv and argv[0].endswith(b"llama-server"):
            return int(argv[argv.index(b"--port") + 1])
    raise RuntimeError("the neuron runs no llama-server")


def dequantized_copy() -> Path:
    """The GGUF as a float32 safetensors directory (once), for the transformers engine."""
    if (HF_COPY / "config.json").exists():
        return HF_COPY
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": GGUF.name}
    tokenizer = AutoTokenizer.from_pretrained(GGUF.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(GGUF.parent, dtype=torch.float32, **kwargs)
    # A GGUF-loaded model refuses save_pretrained: copy its (dequantized) weights into a
    # plain model of the same config.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    plain.save_pretrained(HF_COPY)
    tokenizer.save_pretrained(HF_COPY)
    return HF_COPY


async def run(quick: bool) -> str:
    rounds = 1 if quick else 5
    timeout = aiohttp.ClientTimeout(total=600)

    def new_session() -> aiohttp.ClientSession:
        # One connection per request for every contestant: llama-server's HTTP library
        # closes a keep-alive connection after a few requests, and a pooled one reused
        # just then fails ("Server disconnected").
        return aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)
        )

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        direct, relayed, engine = Measured([], [], []), Measured([], [], []), Measured([], [], [])
        async with (
            NeuronProcess(neuron_toml(work)) as neuron,
            new_session() as session,
        ):
            load = {"model": MODEL, "path": str(GGUF), "engine": "llama.cpp"}
            async with session.post(neuron.url + "/models/load", json=load) as response:
                assert response.status == 200, await response.text()
            assert neuron.process is not None
            server = f"http://127.0.0.1:{llama_server_port(neuron.process.pid)}"
            await measure_round(session, server, Measured([], [], []))  # warm both paths
            await measure_round(session, neuron.url, Measured([], [], []))
            for _ in range(rounds):
                await measure_round(session, server, direct)
                await measure_round(session, neuron.url, relayed)
        if quick:  # the dequantizing copy and a slow engine: full runs only
            return _table(rounds, direct, relayed, None)
        hf = await asyncio.to_thread(dequantized_copy)
        async with (
            NeuronProcess(neuron_toml(work)) as neuron,
            new_session() as session,
        ):
            load = {"model": MODEL, "path": str(hf), "dtype": "float32"}
            async with session.post(neuron.url + "/models/load", json=load) as response:
                assert response.status == 200, await response.text()
            await measure_round(session, neuron.url, Measured([], [], []))
            for _ in range(max(1, rounds // 2)):
                await measure_round(session, neuron.url, engine)
    return _table(rounds, direct, relayed, engine)


def _table(rounds: int, direct: Measured, relayed: Measured, engine: Measured | None) -> str:
    ratio_single = statistics.median(relayed.decode) / statistics.median(direct.decode)
    ratio_agg = statistics.median(relayed.aggregate) / statistics.median(direct.aggregate)
    lines = [
        "## engines (SmolLM2-135M-Instruct, Q4_1 GGUF)",
        "",
        f"Streaming chat over HTTP, greedy, {SINGLE_TOKENS} tokens single stream and "
        f"{CONCURRENCY} concurrent streams of {CONCURRENT_TOKENS}; median (min–max) of "
        f"{rounds} alternating rounds ({max(1, rounds // 2)} for transformers). "
        "llama-server: `--parallel 8 --threads 2`; direct = its own port, through helexa "
        '= the neuron that started it (engine = "llama.cpp").',
        "",
        "| engine | single stream decode tok/s | TTFT ms | 8 concurrent, aggregate tok/s |",
        "|---|---:|---:|---:|",
        direct.row("llama-server direct"),
        relayed.row('through helexa (engine = "llama.cpp")'),
        engine.row("helexa transformers engine (fp32, dequantized GGUF)")
        if engine
        else "| helexa transformers engine | (full run only) | | |",
        "",
        f"Through helexa / direct: single stream {ratio_single:.2f}x, 8 concurrent "
        f"{ratio_agg:.2f}x (target >= {TARGET}x).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(asyncio.run(run("--quick" in sys.argv)))
