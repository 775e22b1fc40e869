"""Cold load (scenario 4): `POST /models/load` on a real neuron vs raw `from_pretrained`.

The neuron is a real `helexa neuron` subprocess (already up, torch imported);
each repetition loads the model folder over HTTP, waits for the answer (the
route returns when the model is loaded and servable), then unloads it. The
raw side is `AutoTokenizer` + `AutoModelForCausalLM.from_pretrained` of the
same folder in this process, in a worker thread like the neuron's own.
The two alternate (A, B, A, B, ...) after one warm-up of each, so the page
cache is warm for both and background load hits both alike.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.neuron import model_dir
from helexa.testing.neuron_proc import NeuronProcess

TARGET = 1.2  # load-to-ready over raw from_pretrained, at most


async def run(quick: bool) -> str:
    size = "tiny" if quick else "small"
    directory = model_dir(size)
    reps = 1 if quick else 5
    name = f"helexa-{size}"
    async with NeuronProcess() as neuron, aiohttp.ClientSession() as session:
        neuron_times: list[float] = []
        raw_times: list[float] = []
        for rep in range(reps + 1):
            over_http = await _load_over_http(session, neuron.url, name, directory)
            raw = await asyncio.to_thread(_raw_load, directory)
            if rep:  # the first pair is the warm-up
                neuron_times.append(over_http)
                raw_times.append(raw)
    return _render(name, neuron_times, raw_times)


async def _load_over_http(
    session: aiohttp.ClientSession, url: str, name: str, directory: Path
) -> float:
    """Seconds from POST /models/load to its answer (model ready); then unload it."""
    started = time.perf_counter()
    async with session.post(
        f"{url}/models/load", json={"model": name, "path": str(directory)}
    ) as resp:
        body = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"load failed: HTTP {resp.status}: {body}")
    seconds = time.perf_counter() - started
    async with session.post(f"{url}/models/unload", json={"model": name}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"unload failed: HTTP {resp.status}: {await resp.text()}")
    return seconds


def _raw_load(directory: Path) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    model.eval()
    return time.perf_counter() - started


def _render(name: str, neuron: list[float], raw: list[float]) -> str:
    med = statistics.median(neuron) / statistics.median(raw)
    best = min(neuron) / min(raw)

    def verdict(ratio: float) -> str:
        return "met" if ratio <= TARGET else "**missed**"

    return "\n".join(
        [
            "## cold load (scenario 4)",
            "",
            f"Model `{name}` from a local folder (warm page cache), {len(neuron)} alternating "
            "repetitions after a warm-up. helexa = `POST /models/load` on a running "
            "`helexa neuron` until it answers (loaded, footprint measured, owner thread "
            "started), then `POST /models/unload`; raw = `AutoTokenizer` + "
            "`AutoModelForCausalLM.from_pretrained` in-process. Seconds.",
            "",
            "| | helexa POST /models/load | raw from_pretrained | ratio | target |",
            "|---|---:|---:|---:|---:|",
            f"| median | {statistics.median(neuron):.3f} | {statistics.median(raw):.3f} "
            f"| {med:.2f}x | <= {TARGET}x ({verdict(med)}) |",
            f"| best | {min(neuron):.3f} | {min(raw):.3f} | {best:.2f}x "
            f"| <= {TARGET}x ({verdict(best)}) |",
            "",
        ]
    )
