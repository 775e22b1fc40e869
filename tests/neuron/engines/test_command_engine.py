"""engine = "command": helexa's own neuron started from a template, behind a parent neuron.

Everything real: the parent neuron on loopback, a child `helexa neuron` process
started by the parent from the template, the tiny model, the openai SDK.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from helexa.neuron.config import NeuronConfig
from helexa.neuron.engines.served import ServedModel
from helexa.testing.neuron_proc import InProcessNeuron
from tests.neuron.engines.conftest import gone, neuron_template, rss_mb, until

MODEL = "helexa/tiny"


@pytest.fixture
async def parent() -> AsyncIterator[InProcessNeuron]:
    config = NeuronConfig.model_validate({"neuron": {"offline": True, "max_in_flight": 2}})
    async with InProcessNeuron.start(config) as neuron:
        yield neuron


async def load(client: httpx.AsyncClient, template: str) -> httpx.Response:
    body = {"model": MODEL, "engine": "command", "command": template}
    return await client.post("/models/load", json=body, timeout=180)


def served(neuron: InProcessNeuron) -> ServedModel:
    entry = neuron.state.registry.entry(MODEL)
    assert entry is not None and isinstance(entry.model, ServedModel)
    return entry.model


async def test_load_serve_count_measure_and_unload(
    parent: InProcessNeuron, tiny_model_dir: Path, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=parent.url, timeout=60) as http:
        loaded = await load(http, neuron_template(tmp_path, MODEL, tiny_model_dir))
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["state"] == "loaded" and loaded.json()["engine"] == "command"
        child = served(parent)
        assert child.base_url.startswith("http://127.0.0.1:")

        sdk = openai.AsyncOpenAI(base_url=f"{parent.url}/v1", api_key="x", max_retries=0)
        messages: list[openai.types.chat.ChatCompletionMessageParam] = [
            {"role": "user", "content": "count me"}
        ]
        chat = await sdk.chat.completions.create(model=MODEL, messages=messages, max_tokens=4)
        assert chat.usage is not None and chat.usage.completion_tokens > 0
        counted = await http.post("/v1/tokenize", json={"model": MODEL, "messages": messages})
        assert counted.json()["count"] == chat.usage.prompt_tokens

        pieces = []
        stream = await sdk.completions.create(
            model=MODEL, prompt="once", max_tokens=5, stream=True, extra_body={"min_tokens": 5}
        )
        async for chunk in stream:
            pieces.append(chunk.choices[0].text if chunk.choices else "")
        assert "".join(pieces)

        reported = (await http.get("/models")).json()["models"][0]["memory_mb"]
        measured = rss_mb(child.process.pid)
        assert abs(reported - measured) <= 0.2 * measured, (reported, measured)

        pid = child.process.pid
        unloaded = await http.post("/models/unload", json={"model": MODEL})
        assert unloaded.json()["models"] == []
        assert gone(pid)  # stopped and reaped


async def test_a_killed_server_is_reported_failed_and_a_reload_recovers(
    parent: InProcessNeuron, tiny_model_dir: Path, tmp_path: Path
) -> None:
    template = neuron_template(tmp_path, MODEL, tiny_model_dir)
    async with httpx.AsyncClient(base_url=parent.url, timeout=60) as http:
        assert (await load(http, template)).status_code == 200
        os.kill(served(parent).process.pid, signal.SIGKILL)

        async def failed() -> bool:
            models = (await http.get("/models")).json()["models"]
            return bool(models) and models[0]["state"] == "failed"

        await until(failed)
        info = (await http.get("/models")).json()["models"][0]
        assert "exited with code -9" in info["error"]
        refused = await http.post("/v1/completions", json={"model": MODEL, "prompt": "x"})
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_loaded"

        again = await load(http, template)  # what the reconciler does with a failed model
        assert again.status_code == 200 and again.json()["state"] == "loaded"
        ok = await http.post(
            "/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2}
        )
        assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] > 0


async def test_a_client_that_goes_away_frees_the_servers_slot(
    parent: InProcessNeuron, tiny_model_dir: Path, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=parent.url, timeout=60) as http:
        assert (await load(http, neuron_template(tmp_path, MODEL, tiny_model_dir))).is_success
        child_url = served(parent).base_url
        body = {"model": MODEL, "prompt": "go", "max_tokens": 4000, "stream": True}
        body["min_tokens"] = body["max_tokens"]  # random weights: never stop early
        async with http.stream("POST", "/v1/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    assert '"text"' in line, line
                    break  # one token arrived: generation runs in the child
            child_busy = (await http.get(f"{child_url}/models")).json()["models"][0]
            assert child_busy["in_flight"] == 1
        # The response is closed: the relay closes upstream, the child drops the sequence.

        async def child_idle() -> bool:
            return (await http.get(f"{child_url}/models")).json()["models"][0]["in_flight"] == 0

        await until(child_idle)
        assert parent.state.registry.entry(MODEL).admission.in_flight == 0  # type: ignore[union-attr]


async def test_a_bad_template_is_refused_and_changes_nothing(parent: InProcessNeuron) -> None:
    async with httpx.AsyncClient(base_url=parent.url, timeout=60) as http:
        refused = await load(http, "my-server --model {path}")
        assert refused.status_code == 400
        assert "{port}" in refused.json()["error"]["message"]
        assert refused.json()["error"]["param"] == "command"
        assert (await http.get("/models")).json()["models"] == []


async def test_a_server_that_dies_at_start_fails_the_load_with_its_output(
    parent: InProcessNeuron,
) -> None:
    script = "import sys; print('cannot open the weights'); sys.exit(3)"
    template = f'{sys.executable} -c "{script}" {{port}}'
    async with httpx.AsyncClient(base_url=parent.url, timeout=60) as http:
        failed = await load(http, template)
        assert failed.status_code == 500 and failed.json()["error"]["code"] == "load_failed"
        assert "exited with code 3" in failed.json()["error"]["message"]
        assert "cannot open the weights" in failed.json()["error"]["message"]
        info = (await http.get("/models")).json()["models"][0]
        assert info["state"] == "failed" and "cannot open the weights" in info["error"]
