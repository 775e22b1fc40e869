"""Request -> grammar (neuron/structured.py), and parallel_tool_calls: false cutting a free
answer after its first call (generate.py), on the real engine and tiny model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from helexa.errors import BadRequest
from helexa.neuron.admission import Admission
from helexa.neuron.config import NeuronConfig
from helexa.neuron.engine.constraint import grammars_for, lark_grammar
from helexa.neuron.engine.spec import SamplingParams
from helexa.neuron.generate import Outcome, Piece, generate
from helexa.neuron.loading import engine_loader
from helexa.neuron.registry import Registry
from helexa.neuron.structured import chat_grammar, closed_objects, forced_tools, tool_call_lark
from helexa.protocol.neuron import LoadRequest
from helexa.protocol.openai import ChatCompletionRequest, Tool
from helexa.testing.neuron_proc import TINY_MODEL_ID, InProcessNeuron

TINY = "helexa/tiny"
ARGS = {"type": "object", "properties": {"n": {"enum": [1, 2]}}, "required": ["n"]}
TOOLS = [
    {"type": "function", "function": {"name": "a", "parameters": ARGS}},
    {"type": "function", "function": {"name": "b"}},
]


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": TINY, "messages": [{"role": "user", "content": "hi"}], **fields}
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tools": TOOLS}, []),
        ({"tools": TOOLS, "tool_choice": "auto"}, []),
        ({"tools": TOOLS, "tool_choice": "none"}, []),
        ({"tools": TOOLS, "tool_choice": "required"}, [0, 1]),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "b"}}}, [1]),
    ],
)
def test_forced_tools(fields: dict[str, Any], expected: list[int]) -> None:
    assert [i for i, _ in forced_tools(chat(**fields))] == expected


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "zz"}}},
            "tool_choice",
        ),
        ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": []}}},
            "response_format.json_schema.schema",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "string", "format": "weird"}},
                }
            },
            "response_format.json_schema.schema",
        ),
    ],
)
def test_requests_that_cannot_be_constrained_are_400s(
    fields: dict[str, Any], param: str, tiny_tokenizer: Any
) -> None:
    with pytest.raises(BadRequest) as info:
        chat_grammar(chat(**fields), lambda: grammars_for(tiny_tokenizer, len(tiny_tokenizer), []))
    assert info.value.param == param


def test_text_and_free_requests_have_no_grammar(tiny_tokenizer: Any) -> None:
    def never() -> Any:
        raise AssertionError("no tokenizer work for a free request")

    assert chat_grammar(chat(response_format={"type": "text"}), never) is None
    assert chat_grammar(chat(tools=TOOLS, tool_choice="auto"), never) is None


def test_tool_call_grammar_uses_the_special_tags_when_the_tokenizer_has_them(
    tiny_tokenizer: Any,
) -> None:
    grammars = grammars_for(tiny_tokenizer, len(tiny_tokenizer), [])
    assert grammars.special_token("<tool_call>") and not grammars.special_token("tool")
    tools = [Tool.model_validate(t) for t in TOOLS]
    special = tool_call_lark(tools, several=False, special_tags=True)
    assert special.startswith("start: call\n") and "call_0: <tool_call> " in special
    plain = tool_call_lark(tools, several=True, special_tags=False)
    assert 'start: call ("\\n" call)*' in plain and 'call_1: "<tool_call>" ' in plain
    for lark in (special, plain):
        grammars.compile(lark_grammar(lark), "tool_choice")


OPEN = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_closed_objects_closes_every_object_that_leaves_extra_keys_unsaid() -> None:
    point = {"type": "object", "properties": {"x": {"type": "number"}}}
    schema: dict[str, Any] = {
        **OPEN,
        "properties": {"where": point, "tags": {"type": "array", "items": point}},
        "$defs": {"p": point},
        "anyOf": [point, {"type": "null"}],
        "allOf": [point],  # parts of an intersection stay open
        "default": point,  # data, not a schema
    }
    closed = closed_objects(schema)

    shut = {**point, "additionalProperties": False}
    assert closed["additionalProperties"] is False
    assert closed["properties"] == {"where": shut, "tags": {"type": "array", "items": shut}}
    assert closed["$defs"] == {"p": shut} and closed["anyOf"] == [shut, {"type": "null"}]
    assert closed["allOf"] == [point] and closed["default"] == point
    assert "additionalProperties" not in schema  # a copy
    # what the schema says stays as it is
    for kept in (
        {"type": "object"},
        {**OPEN, "additionalProperties": {"type": "integer"}},
        {**OPEN, "patternProperties": {"^x": {}}},
    ):
        assert closed_objects(kept) == kept


@pytest.mark.parametrize(
    ("fields", "wrap"),
    [
        (
            {
                "tools": [{"type": "function", "function": {"name": "w", "parameters": OPEN}}],
                "tool_choice": "required",
                "parallel_tool_calls": False,
            },
            '<tool_call>\n{"name": "w", "arguments": %s}\n</tool_call>',
        ),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": OPEN}}}, "%s"),
    ],
    ids=["forced-tool", "json-schema"],
)
def test_constrained_output_has_only_the_listed_keys(
    fields: dict[str, Any], wrap: str, tiny_tokenizer: Any
) -> None:
    # A small model otherwise invents keys until max_tokens (SmolLM2-135M did).
    grammars = grammars_for(tiny_tokenizer, len(tiny_tokenizer), [tiny_tokenizer.eos_token_id])
    grammar = chat_grammar(chat(**fields), lambda: grammars)
    assert grammar is not None

    def accepts(arguments: str) -> bool:
        matcher = grammar.start().matcher
        ids = tiny_tokenizer.encode(wrap % arguments, add_special_tokens=False)
        return bool(matcher.consume_tokens(ids)) and bool(matcher.is_accepting())

    assert accepts('{"city":"Paris"}')
    assert not accepts('{"city":"Paris","country":"France"}')


async def test_a_single_tool_call_answer_ends_after_its_first_call(tiny_model_dir: Path) -> None:
    config = NeuronConfig.model_validate({"devices": {"reserve_mb": 0}})
    registry = Registry(
        engine_loader(config),
        lambda _m: Admission(max_in_flight=4, max_queue=4, queue_timeout=5),
        default_drain_timeout=5,
    )
    entry = await registry.load(LoadRequest(model=TINY, path=str(tiny_model_dir)))
    model = entry.model
    assert model is not None
    # A grammar that writes two calls stands in for a model that calls twice on its own.
    grammars = grammars_for(model.tokenizer, model.vocab_size, model.eos_token_ids)
    one_call = tool_call_lark([Tool.model_validate(TOOLS[0])], several=False, special_tags=True)
    two_calls = one_call.replace("start: call\n", 'start: call "\\n" call\n')
    params = SamplingParams(
        max_new_tokens=100,
        seed=3,
        stop_token_ids=model.eos_token_ids,
        grammar=grammars.compile(lark_grammar(two_calls), "test"),
    )

    async def calls(single: bool) -> tuple[list[Any], Outcome]:
        found: list[Any] = []
        outcome = None
        async with registry.generation(entry) as gen:
            async for event in generate(entry, gen, [1, 2, 3], params, [], True, single):
                if isinstance(event, Piece):
                    found += event.tool_calls
                else:
                    outcome = event
        assert outcome is not None
        return found, outcome

    both, whole = await calls(single=False)
    first, cut = await calls(single=True)
    assert len(both) == 2 and [json.loads(c.arguments) for c in first] == [
        json.loads(both[0].arguments)
    ]
    assert whole.finish_reason == cut.finish_reason == "tool_calls"
    assert cut.completion_tokens < whole.completion_tokens
    await registry.close()


async def test_json_object_answers_are_objects(neuron: InProcessNeuron) -> None:
    async def one(seed: int) -> tuple[str | None, str]:
        completion = await neuron.openai().chat.completions.create(
            model=TINY_MODEL_ID,
            messages=[{"role": "user", "content": "JSON please"}],
            response_format={"type": "json_object"},
            max_tokens=120,
            temperature=1.0,
            seed=seed,
        )
        choice = completion.choices[0]
        return choice.finish_reason, choice.message.content or ""

    results = await asyncio.gather(*(one(seed) for seed in range(8)))
    finished = [text for reason, text in results if reason == "stop"]
    assert finished  # random weights ramble inside strings; some still close the object
    assert all(isinstance(json.loads(text), dict) for text in finished)
    # The rest ran out of tokens inside the object: still a JSON object's beginning.
    assert all(text.startswith("{") for _, text in results)
