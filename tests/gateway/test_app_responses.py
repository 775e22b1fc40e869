"""/v1/responses end to end: the real openai SDK -> gateway -> the tiny-model neuron,
and -> a tool-calling upstream (kind = "openai") for the function-call loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from helexa.fleet.state import FleetState
from helexa.gateway import router
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import RunningGateway, run_gateway, write_configs
from tests.gateway.scripted_upstream import ScriptedUpstream
from tests.gateway.tool_upstream import (
    FOLLOW_UP_PREFIX,
    ToolCallScript,
    ToolScript,
    ToolUpstream,
    fleet_toml,
)

TINY = "helexa/tiny"
AGENT = "vendor/agent"
WEATHER_ARGS: dict[str, Any] = {"city": "Zürich", "days": 3}
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "weather",
        "description": "Forecast for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
# Seeded, fixed-length sampling (extensions the gateway passes through) on random weights.
SEEDED = {"seed": 99, "min_tokens": 6}


@pytest.fixture
async def tiny(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> AsyncIterator[RunningGateway]:
    await neuron_a.load(TINY, tiny_model_dir)
    fleet = f'[[neurons]]\nname = "a"\nendpoint = "{neuron_a.url}"\n'
    models = f'[[models]]\nid = "{TINY}"\npath = "{tiny_model_dir}"\n'
    async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
        yield gw


@pytest.fixture
async def upstream() -> AsyncIterator[ToolUpstream]:
    script = ToolScript([ToolCallScript("weather", WEATHER_ARGS)])
    server = await ToolUpstream([AGENT], script).start()
    yield server
    await server.stop()


@pytest.fixture
async def agent(tmp_path: Path, upstream: ToolUpstream) -> AsyncIterator[RunningGateway]:
    async with run_gateway(write_configs(tmp_path, fleet_toml(upstream), "")) as gw:
        yield gw


async def test_create_with_instructions_and_string_input(tiny: RunningGateway) -> None:
    response = await tiny.openai().responses.create(
        model=TINY,
        instructions="Answer in one word.",
        input="What is helexa?",
        max_output_tokens=6,
        extra_body=SEEDED,
    )
    assert response.status == "incomplete"  # a length cut, said the Responses way
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text
    assert response.usage is not None and response.usage.output_tokens == 6
    assert response.usage.input_tokens > 0 and response.model == TINY


async def test_stream_events_and_final_response_match_create(tiny: RunningGateway) -> None:
    client = tiny.openai()
    request: dict[str, Any] = {
        "model": TINY,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}],
        "max_output_tokens": 6,
        "extra_body": SEEDED,
    }
    whole = await client.responses.create(**request)
    events: list[Any] = []
    async with client.responses.stream(**request) as stream:
        async for event in stream:
            events.append(event)
    # A length cut ends with response.incomplete (as OpenAI's does), which carries the
    # final response; the SDK's get_final_response() only accepts response.completed.
    final = events[-1].response
    types = [e.type for e in events]
    assert types[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == whole.output_text


async def test_function_call_loop(agent: RunningGateway, upstream: ToolUpstream) -> None:
    client = agent.openai()
    first = await client.responses.create(model=AGENT, input="Weather?", tools=TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "weather"
    assert json.loads(calls[0].arguments) == WEATHER_ARGS

    follow = await client.responses.create(
        model=AGENT,
        tools=TOOLS,
        input=[
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": "weather",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
        ],
    )
    assert follow.output_text == FOLLOW_UP_PREFIX + "sunny"
    assert upstream.tool_messages() == [
        {"role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny"}
    ]
    assistant = upstream.requests[-1]["messages"][1]
    assert assistant["tool_calls"][0]["function"]["arguments"] == calls[0].arguments


async def test_streamed_function_call_arguments(agent: RunningGateway) -> None:
    deltas: list[str] = []
    done: list[Any] = []
    async with agent.openai().responses.stream(
        model=AGENT, input="Weather?", tools=TOOLS
    ) as stream:
        async for event in stream:
            if event.type == "response.function_call_arguments.delta":
                deltas.append(event.delta)
            elif event.type == "response.function_call_arguments.done":
                done.append(event)
        final = await stream.get_final_response()
    assert len(deltas) > 3  # arguments arrive as generated, in pieces
    assert len(done) == 1 and json.loads(done[0].arguments) == WEATHER_ARGS
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert json.loads(call.arguments) == WEATHER_ARGS and final.status == "completed"


async def test_previous_response_id_is_a_clear_400(agent: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await agent.openai().responses.create(
            model=AGENT, input="again", previous_response_id="resp_123"
        )
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "previous_response_id"
    assert "no conversation state" in info.value.body["message"]


async def test_unknown_model_is_404(agent: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError):
        await agent.openai().responses.create(model="nope", input="hi")


async def test_stream_with_a_cold_load(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> None:
    fleet = f'[[neurons]]\nname = "a"\nendpoint = "{neuron_a.url}"\n'
    models = f'[[models]]\nid = "helexa/lazy"\npath = "{tiny_model_dir}"\n'
    async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
        async with gw.openai().responses.stream(
            model="helexa/lazy", input="hi", max_output_tokens=3, extra_body={"min_tokens": 3}
        ) as stream:
            types = [event.type async for event in stream]
        assert gw.decisions("load") == ["helexa/lazy"]
    assert types[0] == "response.created" and types[-1] == "response.incomplete"
    assert types.count("response.output_text.delta") >= 1


async def test_upstream_cut_mid_stream_fails_the_response(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> None:
    scripted_upstream.script.cut_after = 1
    fleet = (
        f'[[neurons]]\nname = "big"\nkind = "openai"\n'
        f'endpoint = "{scripted_upstream.url}/v1"\nmodels = ["vendor/big"]\n'
    )
    async with (
        run_gateway(write_configs(tmp_path, fleet, "")) as gw,
        gw.openai().responses.stream(model="vendor/big", input="hi") as stream,
    ):
        events = [event async for event in stream]
    error, failed = events[-2:]
    assert error.type == "error" and "failed mid-stream" in error.message
    assert failed.type == "response.failed" and failed.response.status == "failed"


CODEX_FIRST_TURN = Path(__file__).parents[1] / "translate" / "codex" / "first_turn.json"
WAIT_ARGS = {"targets": ["agent-1"]}


def codex_body(*, stream: bool) -> dict[str, Any]:
    """Codex's captured first request (tests/translate/test_responses_codex.py), for AGENT."""
    body: dict[str, Any] = json.loads(CODEX_FIRST_TURN.read_text())
    return body | {"model": AGENT, "stream": stream}


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("stream", [False, True])
async def test_codex_request_calls_a_namespaced_tool(
    agent: RunningGateway,
    upstream: ToolUpstream,
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    hints: list[router.RoutingHint] = []
    choose = router.choose_replica_explained

    def noting_hint(
        model_id: str,
        fleet: FleetState,
        hint: router.RoutingHint = router.NO_HINT,
        policy: router.RoutingPolicy = router.DEFAULT_POLICY,
    ) -> router.ReplicaChoice:
        hints.append(hint)
        return choose(model_id, fleet, hint, policy)

    monkeypatch.setattr(router, "choose_replica_explained", noting_hint)
    upstream.script = ToolScript(
        [ToolCallScript("multi_agent_v1__wait_agent", WAIT_ARGS)], reasoning="wait for it"
    )
    body = codex_body(stream=stream)
    async with agent.http() as http:
        answer = await http.post("/v1/responses", json=body)
    assert answer.status_code == 200, answer.text
    if stream:
        events = sse_events(answer.text)
        assert events[-1]["type"] == "response.completed"
        final = events[-1]["response"]
        done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
        assert done == final["output"]
    else:
        final = answer.json()
    reasoning, call = final["output"]
    assert reasoning["encrypted_content"].startswith("helexa-reasoning:v1:")
    assert (call["namespace"], call["name"]) == ("multi_agent_v1", "wait_agent")
    assert json.loads(call["arguments"]) == WAIT_ARGS and final["store"] is False
    # The model saw the namespace flattened and no hosted tool.
    (sent,) = upstream.requests
    names = [tool["function"]["name"] for tool in sent["tools"]]
    assert "multi_agent_v1__wait_agent" in names and "web_search" not in names
    # prompt_cache_key rode along as the routing hint.
    assert hints and {h.session_key for h in hints} == {body["prompt_cache_key"]}


async def test_forcing_a_hosted_tool_is_a_clear_400(agent: RunningGateway) -> None:
    body = codex_body(stream=True) | {"tool_choice": {"type": "web_search"}}
    async with agent.http() as http:
        answer = await http.post("/v1/responses", json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "tool_choice" and "hosted tool" in error["message"]
