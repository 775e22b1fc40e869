"""engine = "llama.cpp": the real llama-server with the real SmolLM2 GGUF, behind a neuron."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from helexa.neuron.config import NeuronConfig
from helexa.neuron.engines.served import ServedModel
from helexa.testing.neuron_proc import InProcessNeuron
from tests.neuron.engines.conftest import gone, rss_mb, until

MODEL = "smollm2"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
]
TOOLS: list[openai.types.chat.ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def engine_config(llama_server: Path, max_in_flight: int = 2) -> NeuronConfig:
    return NeuronConfig.model_validate(
        {
            "neuron": {"offline": True, "max_in_flight": max_in_flight},
            "engines": {"llama_server": str(llama_server)},
        }
    )


@pytest.fixture
async def neuron(llama_server: Path) -> AsyncIterator[InProcessNeuron]:
    async with InProcessNeuron.start(engine_config(llama_server)) as running:
        yield running


async def load(http: httpx.AsyncClient, gguf: Path, **extra: object) -> httpx.Response:
    body = {"model": MODEL, "path": str(gguf), "engine": "llama.cpp", **extra}
    return await http.post("/models/load", json=body, timeout=180)


def served(neuron: InProcessNeuron) -> ServedModel:
    entry = neuron.state.registry.entry(MODEL)
    assert entry is not None and isinstance(entry.model, ServedModel)
    return entry.model


async def test_load_serve_count_measure_and_unload(
    neuron: InProcessNeuron, smollm2_gguf: Path
) -> None:
    async with httpx.AsyncClient(base_url=neuron.url, timeout=60) as http:
        loaded = await load(http, smollm2_gguf, context_length=1024)
        assert loaded.status_code == 200, loaded.text
        info = loaded.json()
        assert info["engine"] == "llama.cpp" and info["dtype"] == "gguf"
        assert info["context_length"] == 1024 and "chat" in info["capabilities"]
        assert served(neuron).launch.host == "127.0.0.1"

        sdk = openai.AsyncOpenAI(base_url=f"{neuron.url}/v1", api_key="x", max_retries=0)
        chat = await sdk.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0
        )
        assert chat.choices[0].message.content and chat.usage is not None
        counted = await http.post("/v1/tokenize", json={"model": MODEL, "messages": MESSAGES})
        assert counted.json()["count"] == chat.usage.prompt_tokens

        with_tools = await sdk.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, max_tokens=2
        )
        counted = await http.post(
            "/v1/tokenize", json={"model": MODEL, "messages": MESSAGES, "tools": TOOLS}
        )
        assert with_tools.usage is not None
        assert counted.json()["count"] == with_tools.usage.prompt_tokens

        text = await sdk.completions.create(model=MODEL, prompt="One, two,", max_tokens=4)
        counted = await http.post("/v1/tokenize", json={"model": MODEL, "prompt": "One, two,"})
        assert text.usage is not None and counted.json()["count"] == text.usage.prompt_tokens

        pieces = []
        stream = await sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        assert "".join(pieces)

        reported = (await http.get("/models")).json()["models"][0]["memory_mb"]
        measured = rss_mb(served(neuron).process.pid)
        assert abs(reported - measured) <= 0.2 * measured, (reported, measured)

        pid = served(neuron).process.pid
        assert (await http.post("/models/unload", json={"model": MODEL})).json()["models"] == []
        assert gone(pid)


async def test_a_cancelled_stream_frees_the_slot(
    neuron: InProcessNeuron, smollm2_gguf: Path
) -> None:
    async with httpx.AsyncClient(base_url=neuron.url, timeout=60) as http:
        assert (await load(http, smollm2_gguf, context_length=2048)).is_success
        slots_url = served(neuron).base_url + "/slots"
        body = {
            "model": MODEL,
            "prompt": "Count forever: 1, 2, 3,",
            "max_tokens": 1500,
            "ignore_eos": True,
            "stream": True,
        }
        async with http.stream("POST", "/v1/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    break  # generating now
            slots = (await http.get(slots_url)).json()
            assert any(s["is_processing"] for s in slots)

        async def idle() -> bool:
            return not any(s["is_processing"] for s in (await http.get(slots_url)).json())

        await until(idle)
        entry = neuron.state.registry.entry(MODEL)
        assert entry is not None and entry.admission.in_flight == 0


async def test_a_killed_server_is_reported_and_a_reload_recovers(
    neuron: InProcessNeuron, smollm2_gguf: Path
) -> None:
    async with httpx.AsyncClient(base_url=neuron.url, timeout=60) as http:
        assert (await load(http, smollm2_gguf)).is_success
        os.kill(served(neuron).process.pid, signal.SIGKILL)

        async def failed() -> bool:
            return (await http.get("/models")).json()["models"][0]["state"] == "failed"

        await until(failed)
        error = (await http.get("/models")).json()["models"][0]["error"]
        assert "exited with code -9" in error and "|" in error  # with its last log lines

        assert (await load(http, smollm2_gguf)).json()["state"] == "loaded"
        done = await http.post(
            "/v1/completions", json={"model": MODEL, "prompt": "Hi", "max_tokens": 2}
        )
        assert done.status_code == 200 and done.json()["usage"]["completion_tokens"] > 0


async def test_a_command_engine_runs_llama_server_from_a_template(
    neuron: InProcessNeuron, llama_server: Path, smollm2_gguf: Path
) -> None:
    template = (
        f"{llama_server} --model {{path}} --host {{host}} --port {{port}} -np {{parallel}}"
        " --no-repack"
    )
    async with httpx.AsyncClient(base_url=neuron.url, timeout=60) as http:
        body = {"model": MODEL, "path": str(smollm2_gguf), "engine": "command", "command": template}
        loaded = await http.post("/models/load", json=body, timeout=180)
        assert loaded.status_code == 200 and loaded.json()["engine"] == "command"
        assert served(neuron).process.argv[0] == str(llama_server)
        sdk = openai.AsyncOpenAI(base_url=f"{neuron.url}/v1", api_key="x", max_retries=0)
        chat = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3)
        counted = await http.post("/v1/tokenize", json={"model": MODEL, "messages": MESSAGES})
        assert chat.usage is not None and counted.json()["count"] == chat.usage.prompt_tokens


async def test_a_missing_gguf_is_404_and_a_missing_binary_a_load_failure(
    llama_server: Path, tmp_path: Path
) -> None:
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF")
    config = engine_config(tmp_path / "no-such-server")
    async with (
        InProcessNeuron.start(config) as running,
        httpx.AsyncClient(base_url=running.url, timeout=60) as http,
    ):
        missing = await load(http, tmp_path / "absent.gguf")
        assert missing.status_code == 404
        no_binary = await load(http, gguf)
        assert no_binary.status_code == 500 and "no-such-server" in no_binary.text


async def test_an_unload_out_of_drain_time_ends_a_relayed_request(
    neuron: InProcessNeuron, smollm2_gguf: Path
) -> None:
    async with httpx.AsyncClient(base_url=neuron.url, timeout=120) as http:
        assert (await load(http, smollm2_gguf, context_length=2048)).is_success
        slots_url = served(neuron).base_url + "/slots"
        body = {"model": MODEL, "prompt": "1, 2,", "max_tokens": 1500, "ignore_eos": True}
        request = asyncio.ensure_future(http.post("/v1/completions", json=body))

        async def busy() -> bool:
            return any(s["is_processing"] for s in (await http.get(slots_url)).json())

        await until(busy)
        unloaded = await http.post("/models/unload", json={"model": MODEL, "drain_timeout_s": 0})
        assert unloaded.json()["models"] == []
        answer = await request
        assert answer.status_code == 503, answer.text[-300:]
        assert answer.json()["error"]["code"] == "model_unloading"
