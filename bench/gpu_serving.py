"""The GPU check's serving rows: a real neuron in this process, driven over HTTP and
through its engine. See bench/gpu_check.py for the command and what each row means."""

from __future__ import annotations

# First: the engine's OpenMP and CUDA settings must be in place before torch loads.
from helexa.neuron.engine import threads  # noqa: F401  # isort: skip

import asyncio
import gc
import statistics
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

import httpx
import psutil
import torch

from bench.gpu_check import Report, Status
from helexa.neuron.config import NeuronConfig
from helexa.neuron.engine import LoadedModel, SamplingParams
from helexa.neuron.hardware import discover
from helexa.testing.neuron_proc import InProcessNeuron, chat_body
from helexa.testing.tiny_model import build, with_sliding_window

REPO = Path(__file__).resolve().parent.parent
MAIN = "check/main"
MB = 1024 * 1024


class Setup:
    """What differs between a GPU run and the quick CPU run."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"
        self.size = "medium" if self.cuda else "tiny"
        self.new_tokens = 64 if self.cuda else 16
        self.long_prompt = 6000 if self.cuda else 1500
        self.max_lag_ms = 50.0 if self.cuda else 250.0
        self.gpus = torch.cuda.device_count() if self.cuda else 0


def discovery_row() -> tuple[Status, str]:
    report = discover()
    gpus = [d for d in report.devices if d.kind == "cuda"]
    if not gpus:
        return "info", f"no GPU: {report.engine.nvml}; CPU {report.devices[0].name}"
    names = ", ".join(
        f"{d.index}: {d.name} {d.memory_free_mb}/{d.memory_total_mb} MB" for d in gpus
    )
    status: Status = "FAIL" if report.engine.cuda_problem else "ok"
    extra = f"; {report.engine.cuda_problem}" if report.engine.cuda_problem else ""
    return status, f"{names}; driver {report.engine.driver}, CUDA {report.engine.cuda}{extra}"


def model_dir(size: str) -> Path:
    out = REPO / ".cache" / "models" / f"helexa-{size}"
    if not (out / "config.json").exists():
        build(out, size=size)
    return out


def allocated() -> int:
    if not torch.cuda.is_available():
        return 0
    return sum(torch.cuda.memory_allocated(i) for i in range(torch.cuda.device_count()))


def tensor_bytes(loaded: LoadedModel) -> int:
    tensors = [*loaded.model.parameters(), *loaded.model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def greedy(tokens: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=tokens, min_new_tokens=tokens, temperature=0)


def prompt(length: int, offset: int = 0) -> list[int]:
    return [100 + (offset + i * 7) % 3000 for i in range(length)]


async def collect(loaded: LoadedModel, ids: list[int], params: SamplingParams) -> list[int]:
    return [t async for t in loaded.stream(ids, params)]


async def load(neuron: InProcessNeuron, model_id: str, path: Path, **extra: Any) -> httpx.Response:
    body = {"model": model_id, "path": str(path), **extra}
    async with neuron.http() as client:
        client.timeout = httpx.Timeout(300)
        return await client.post("/models/load", json=body)


async def unload(neuron: InProcessNeuron, model_id: str) -> None:
    async with neuron.http() as client:
        response = await client.post("/models/unload", json={"model": model_id})
        if response.status_code != 404:  # 404: it never loaded
            response.raise_for_status()


async def chat(neuron: InProcessNeuron, model_id: str, tokens: int, content: str = "hi") -> int:
    """A fixed-length completion's status code."""
    body = chat_body(model_id, content, max_tokens=tokens, min_tokens=tokens, ignore_eos=True)
    async with neuron.http() as client:
        client.timeout = httpx.Timeout(300)
        return (await client.post("/v1/chat/completions", json=body)).status_code


async def still_serving(neuron: InProcessNeuron) -> bool:
    async with neuron.http() as client:
        healthy = (await client.get("/health")).status_code == 200
    return healthy and await chat(neuron, MAIN, 4) == 200


def engine_of(neuron: InProcessNeuron, model_id: str) -> LoadedModel:
    entry = neuron.state.registry.entry(model_id)
    assert entry is not None and entry.model is not None, f"{model_id} is not loaded"
    return cast(LoadedModel, entry.model)  # the engine's own class behind the protocol


# --- rows -----------------------------------------------------------------


async def load_row(
    neuron: InProcessNeuron, setup: Setup, model_id: str, path: Path
) -> tuple[Status, str]:
    before = allocated()
    response = await load(neuron, model_id, path)
    if response.status_code != 200:
        return "FAIL", f"{response.status_code} {response.text[:300]}"
    info = response.json()
    facts = f"{info['dtype']} on devices {info['devices']}, {info['load_seconds']:.1f} s"
    loaded = engine_of(neuron, model_id)
    if hasattr(getattr(loaded, "model", None), "parameters"):  # a transformers model
        params = sum(p.numel() for p in loaded.model.parameters()) / 1e6
        facts = f"{params:.0f}M params, {facts} ({loaded.device})"
    if not setup.cuda:
        return "info", f"{facts}; memory_mb {info['memory_mb']} (CPU: RSS growth or tensors)"
    grown = (allocated() - before) / MB
    ratio = info["memory_mb"] / grown if grown else float("inf")
    status: Status = (
        "ok" if 0.9 <= ratio <= 1.1 and info["dtype"] in ("bfloat16", "float16") else "FAIL"
    )
    return status, (
        f"{facts}; memory_mb {info['memory_mb']} vs torch.cuda.memory_allocated growth "
        f"{grown:.0f} MB ({ratio:.2f}x)"
    )


async def stream_row(neuron: InProcessNeuron, setup: Setup) -> tuple[Status, str]:
    await chat(neuron, MAIN, 2)  # warm-up: the chat template's first render
    body = chat_body(MAIN, "Tell me a story", stream=True, max_tokens=setup.new_tokens)
    body |= {"min_tokens": setup.new_tokens, "ignore_eos": True}
    started = time.monotonic()
    first = None
    chunks = 0
    async with (
        neuron.http() as client,
        client.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        if r.status_code != 200:
            return "FAIL", f"{r.status_code}"
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                chunks += 1
                first = first or time.monotonic() - started
    total = time.monotonic() - started
    status: Status = "ok" if chunks > 0 and first is not None else "FAIL"
    return status, f"{chunks} chunks, first after {1000 * (first or 0):.0f} ms, {total:.2f} s total"


async def throughput_row(neuron: InProcessNeuron, setup: Setup) -> tuple[Status, str]:
    loaded = engine_of(neuron, MAIN)
    n = setup.new_tokens
    prompts = [prompt(24 + 9 * i, i) for i in range(8)]
    await collect(loaded, prompts[0], greedy(4))  # warm-up
    await asyncio.to_thread(_raw_generate, loaded, prompts[:1], 4)
    started = time.monotonic()
    await collect(loaded, prompts[0], greedy(n))
    engine_one = n / (time.monotonic() - started)
    raw_one = n / await asyncio.to_thread(_raw_generate, loaded, prompts[:1], n)
    started = time.monotonic()
    await asyncio.gather(*(collect(loaded, p, greedy(n)) for p in prompts))
    engine_eight = 8 * n / (time.monotonic() - started)
    raw_eight = 8 * n / await asyncio.to_thread(_raw_generate, loaded, prompts, n)
    return "info", (
        f"1 stream {engine_one:.0f} tok/s vs raw generate {raw_one:.0f} "
        f"({engine_one / raw_one:.2f}x); 8 streams {engine_eight:.0f} tok/s vs one padded "
        f"generate batch {raw_eight:.0f} ({engine_eight / raw_eight:.2f}x); "
        f"8 streams / 1 stream {engine_eight / engine_one:.1f}x"
    )


def _raw_generate(loaded: LoadedModel, prompts: list[list[int]], n: int) -> float:
    """Seconds for transformers' own generate of `prompts` as one left-padded batch."""
    longest = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), longest), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, longest - len(p) :] = torch.tensor(p)
        mask[row, longest - len(p) :] = 1
    started = time.monotonic()
    with torch.inference_mode():
        loaded.model.generate(
            input_ids=ids.to(loaded.device),
            attention_mask=mask.to(loaded.device),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
        )
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    return time.monotonic() - started


async def concurrency_row(neuron: InProcessNeuron, model_id: str = MAIN) -> tuple[Status, str]:
    """8 unequal streams, 2 cancelled mid-batch, then one more request."""
    loaded = engine_of(neuron, model_id)
    prompts = [prompt(5 + 11 * i, i) for i in range(8)]
    lengths = [6 + 5 * i for i in range(8)]
    cancelled = {2, 5}

    async def one(i: int) -> list[int]:
        got: list[int] = []
        stream: AsyncGenerator[int, None] = loaded.stream(prompts[i], greedy(lengths[i]))
        async with aclosing(stream):
            async for token in stream:
                got.append(token)
                if i in cancelled and len(got) == 3:
                    break
        return got

    outputs = await asyncio.gather(*(one(i) for i in range(8)))
    wrong = [i for i in range(8) if len(outputs[i]) != (3 if i in cancelled else lengths[i])]
    drained = False
    for _ in range(500):  # the cancelled rows leave at the owner thread's next step
        drained = loaded.active_sequences == 0
        if drained:
            break
        await asyncio.sleep(0.01)
    after = await collect(loaded, prompts[0], greedy(lengths[0]))
    alone = [await collect(loaded, prompts[i], greedy(lengths[i])) for i in range(8)]
    same = sum(outputs[i] == alone[i] for i in range(8) if i not in cancelled)
    ok = not wrong and drained and len(after) == lengths[0]
    return ("ok" if ok else "FAIL"), (
        f"lengths {[len(o) for o in outputs]} (2 and 5 cancelled after 3); wrong rows {wrong}; "
        f"new request {len(after)} tokens; {same}/6 finished rows equal to running alone"
    )


async def split_row(setup: Setup, path: Path) -> tuple[Status, str]:
    """The model over 2 GPUs, forced by a per-GPU cap of 3/4 of its weights (its own neuron,
    so the cap binds nothing else)."""
    if setup.gpus < 2:
        return "skip", f"needs 2 GPUs, this machine has {setup.gpus}"
    from helexa.neuron.engine import weights_bytes

    cap_mb = round(weights_bytes(path) * 0.75 / MB)
    devices = {"reserve_mb": 0, "max_memory_mb": cap_mb}
    config = NeuronConfig.model_validate({"neuron": {"max_in_flight": 16}, "devices": devices})
    async with InProcessNeuron.start(config) as neuron:
        response = await load(neuron, "check/split", path, devices=2)
        if response.status_code != 200:
            return "FAIL", f"{response.status_code} {response.text[:300]}"
        placed = getattr(engine_of(neuron, "check/split").model, "hf_device_map", {})
        where = sorted({str(d) for d in placed.values()})
        status, detail = await concurrency_row(neuron, "check/split")
        await unload(neuron, "check/split")
    on_gpus = all(w.isdigit() for w in where) and len(where) == 2
    return ("ok" if on_gpus and status == "ok" else "FAIL"), (
        f"cap {cap_mb} MB per GPU; layers on {where}; {detail}"
    )


async def lag_row(neuron: InProcessNeuron, setup: Setup) -> tuple[Status, str]:
    """The event loop's worst lag and /health's worst latency while a long prompt
    prefills beside a running stream."""
    loaded = engine_of(neuron, MAIN)
    lags: list[float] = []
    health: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.monotonic()
            await asyncio.sleep(0.005)
            lags.append(time.monotonic() - started - 0.005)

    async def poll_health() -> None:
        async with neuron.http() as client:
            while not done.is_set():
                started = time.monotonic()
                (await client.get("/health")).raise_for_status()
                health.append(time.monotonic() - started)

    async def work() -> None:
        running = asyncio.ensure_future(collect(loaded, prompt(16), greedy(4 * setup.new_tokens)))
        await asyncio.sleep(0)
        started = time.monotonic()
        await collect(loaded, prompt(setup.long_prompt, 3), greedy(1))
        timings.append(time.monotonic() - started)
        await running
        done.set()

    timings: list[float] = []
    await asyncio.gather(ticker(), poll_health(), work())
    worst = 1000 * max(lags)
    # Judged on a GPU (where a synchronizing copy on the loop would show); on a shared CPU
    # the prefill's threads compete with the loop for cores, so the numbers are for reading.
    status: Status = ("ok" if worst <= setup.max_lag_ms else "FAIL") if setup.cuda else "info"
    return status, (
        f"{setup.long_prompt}-token prefill {timings[0]:.2f} s: loop lag max {worst:.1f} ms, "
        f"p50 {1000 * statistics.median(lags):.1f} ms; /health max {1000 * max(health):.1f} ms "
        f"over {len(health)} calls (limit {setup.max_lag_ms:.0f} ms)"
    )


async def oom_rows(report: Report, neuron: InProcessNeuron, setup: Setup, path: Path) -> None:
    if not setup.cuda:
        for stage, status in (("load", 507), ("prefill", 503), ("decode", 503)):
            report.add(f"forced OOM at {stage} ({status})", "skip", "CUDA only")
        return
    total = torch.cuda.get_device_properties(0).total_memory

    def squeeze(headroom_mb: int) -> None:
        """Let this process's allocator grow only `headroom_mb` past what it holds now."""
        torch.cuda.empty_cache()
        limit = (torch.cuda.memory_reserved(0) + headroom_mb * MB) / total
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit), 0)

    async def at_load() -> tuple[Status, str]:
        squeeze(64)
        try:
            response = await load(neuron, "check/oom", path)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, 0)
        serving = await still_serving(neuron)
        ok = response.status_code == 507 and serving
        said = response.text[:200]
        return (
            "ok" if ok else "FAIL"
        ), f"load {response.status_code} {said}; still serving {serving}"

    async def at_prefill() -> tuple[Status, str]:
        loaded = engine_of(neuron, MAIN)
        squeeze(64)
        try:
            error = await _error_of(collect(loaded, prompt(setup.long_prompt), greedy(2)))
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, 0)
        serving = await still_serving(neuron)
        ok = getattr(error, "status", None) == 503 and serving
        return ("ok" if ok else "FAIL"), f"{error!r}; still serving {serving}"

    async def at_decode() -> tuple[Status, str]:
        loaded = engine_of(neuron, MAIN)
        streams = [loaded.stream(prompt(1024, i), greedy(2048)) for i in range(8)]
        for stream in streams:  # every row admitted and decoding
            await anext(stream)
        squeeze(32)
        try:
            errors = await asyncio.gather(*(_error_of(_drain(s)) for s in streams))
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, 0)
        statuses = sorted({getattr(e, "status", "done") for e in errors}, key=str)
        serving = await still_serving(neuron)
        ok = 503 in statuses and 500 not in statuses and serving
        return ("ok" if ok else "FAIL"), f"stream outcomes {statuses}; still serving {serving}"

    await report.run("forced OOM at load (507)", at_load)
    await report.run("forced OOM at prefill (503)", at_prefill)
    await report.run("forced OOM at decode (503)", at_decode)


async def _drain(stream: AsyncIterator[int]) -> None:
    async for _ in stream:
        pass


async def _error_of(work: Any) -> BaseException | None:
    try:
        await work
    except Exception as exc:  # the error is the result this check looks at
        return exc
    return None


async def cycles_row(neuron: InProcessNeuron, setup: Setup, path: Path) -> tuple[Status, str]:
    gc.collect()
    baseline = allocated() if setup.cuda else psutil.Process().memory_info().rss
    after = []
    for cycle in range(3):
        response = await load(neuron, f"check/cycle{cycle}", path)
        response.raise_for_status()
        assert await chat(neuron, f"check/cycle{cycle}", 4) == 200
        await unload(neuron, f"check/cycle{cycle}")
        gc.collect()
        after.append(allocated() if setup.cuda else psutil.Process().memory_info().rss)
    grown_mb = [round((a - baseline) / MB) for a in after]
    if not setup.cuda:
        return "info", f"RSS growth after each cycle {grown_mb} MB (CPU: allocator keeps pages)"
    status: Status = "ok" if abs(grown_mb[-1]) <= 16 else "FAIL"
    return status, f"torch.cuda.memory_allocated vs baseline after each cycle: {grown_mb} MB"


async def twin_loads_row(neuron: InProcessNeuron, path: Path) -> tuple[Status, str]:
    before = allocated()
    responses = await asyncio.gather(*(load(neuron, f"check/twin{i}", path) for i in (0, 1)))
    try:
        codes = [r.status_code for r in responses]
        if codes != [200, 200]:
            return "FAIL", f"statuses {codes}"
        reported = [r.json()["memory_mb"] for r in responses]
        own = [round(tensor_bytes(engine_of(neuron, f"check/twin{i}")) / MB) for i in (0, 1)]
        if not torch.cuda.is_available():
            ok = all(abs(r - o) <= max(1, o // 10) for r, o in zip(reported, own, strict=True))
            return ("ok" if ok else "FAIL"), f"both 200; memory_mb {reported} vs tensors {own} MB"
        # Loaded one at a time, each footprint is its own: together they are the growth.
        grown = round((allocated() - before) / MB)
        ok = abs(grown - sum(reported)) <= max(16, sum(reported) // 10)
        return ("ok" if ok else "FAIL"), (
            f"both 200; memory_mb {reported} (sum {sum(reported)}) vs "
            f"torch.cuda.memory_allocated growth {grown} MB"
        )
    finally:
        for i in (0, 1):
            await unload(neuron, f"check/twin{i}")


async def sliding_row(neuron: InProcessNeuron, path: Path) -> tuple[Status, str]:
    response = await load(neuron, "check/sliding", path)
    response.raise_for_status()
    try:
        codes = await asyncio.gather(
            *(chat(neuron, "check/sliding", 12, f"hi {i}") for i in range(3))
        )
        return ("ok" if codes == [200] * 3 else "FAIL"), f"3 concurrent requests: {codes}"
    finally:
        await unload(neuron, "check/sliding")


async def real_model_row(
    neuron: InProcessNeuron, setup: Setup, path: Path | None
) -> tuple[Status, str]:
    if path is None:
        return "skip", "no --model PATH given"
    status, detail = await load_row(neuron, setup, "check/real", path)
    if status == "FAIL":
        return status, detail
    try:
        started = time.monotonic()
        code = await chat(neuron, "check/real", setup.new_tokens, "Write a haiku about GPUs.")
        rate = setup.new_tokens / (time.monotonic() - started)
        return ("ok" if code == 200 else "FAIL"), f"{detail}; chat {code}, {rate:.0f} tok/s"
    finally:
        await unload(neuron, "check/real")


async def run_serving_checks(report: Report, device: str, real_model: Path | None) -> None:
    setup = Setup(device)
    main_dir = await asyncio.to_thread(model_dir, setup.size)
    tiny_dir = await asyncio.to_thread(model_dir, "tiny")
    sliding_dir = with_sliding_window(tiny_dir, REPO / ".cache" / "models" / "helexa-tiny-sliding")
    settings = {"neuron": {"max_in_flight": 16, "max_queue": 16}, "devices": {"reserve_mb": 0}}
    config = NeuronConfig.model_validate(settings)
    async with InProcessNeuron.start(config) as neuron:
        await report.run(
            f"load helexa-{setup.size} (auto dtype)",
            lambda: load_row(neuron, setup, MAIN, main_dir),
        )
        if neuron.state.registry.entry(MAIN) is None:
            report.add("serving checks", "FAIL", "the main model did not load; nothing more to run")
            return
        await report.run("streamed generation", lambda: stream_row(neuron, setup))
        await report.run("tok/s vs raw generate", lambda: throughput_row(neuron, setup))
        await report.run("8 unequal streams, cancels, new request", lambda: concurrency_row(neuron))
        await report.run("forced 2-GPU split", lambda: split_row(setup, main_dir))
        await report.run("event loop during long prefill", lambda: lag_row(neuron, setup))
        await oom_rows(report, neuron, setup, main_dir)
        await unload(neuron, MAIN)
        await report.run("3 load/unload cycles", lambda: cycles_row(neuron, setup, main_dir))
        await report.run("2 concurrent loads", lambda: twin_loads_row(neuron, main_dir))
        await report.run(
            "sliding-window model, 3 concurrent", lambda: sliding_row(neuron, sliding_dir)
        )
        await report.run("real model (--model)", lambda: real_model_row(neuron, setup, real_model))
