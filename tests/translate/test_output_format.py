"""Anthropic output_config.format and Responses text.format -> chat response_format."""

from __future__ import annotations

from typing import Any

import pytest

from helexa.errors import BadRequest
from helexa.translate.anthropic_request import anthropic_to_openai
from helexa.translate.responses_request import parse_responses_request, responses_to_chat_request

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
MESSAGES = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def test_anthropic_output_config_format_becomes_a_strict_json_schema() -> None:
    body = anthropic_to_openai(
        {**MESSAGES, "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}
    )
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
    }


def test_anthropic_newer_fields_are_accepted_and_add_nothing() -> None:
    plain = anthropic_to_openai(MESSAGES)
    newer = anthropic_to_openai(
        {
            **MESSAGES,
            "output_config": {"effort": "high"},
            "cache_control": {"type": "ephemeral"},
            "service_tier": "auto",
            "speed": "fast",
            "container": {"id": "c"},
            "inference_geo": "us",
            "diagnostics": {"cache_miss_reason": True},
        }
    )
    assert newer == plain


def test_anthropic_output_format_of_another_type_is_a_400() -> None:
    with pytest.raises(BadRequest) as info:
        anthropic_to_openai({**MESSAGES, "output_config": {"format": {"type": "yaml"}}})
    assert info.value.param is not None and info.value.param.startswith("output_config.format")


def responses(text: Any) -> dict[str, Any]:
    return responses_to_chat_request(
        parse_responses_request({"model": "m", "input": "hi", "text": text})
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ({"format": {"type": "text"}}, None),
        ({"verbosity": "low"}, None),
        ({"format": {"type": "json_object"}}, {"type": "json_object"}),
        (
            {"format": {"type": "json_schema", "name": "x", "schema": SCHEMA, "strict": True}},
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": SCHEMA, "strict": True},
            },
        ),
    ],
)
def test_responses_text_format(text: Any, expected: dict[str, Any] | None) -> None:
    assert responses(text).get("response_format") == expected


@pytest.mark.parametrize(
    ("text", "param"),
    [
        ("json", "text.format"),
        ({"format": "json"}, "text.format"),
        ({"format": {"type": "xml"}}, "text.format.type"),
        ({"format": {"type": "json_schema", "name": "x"}}, "text.format.schema"),
    ],
)
def test_responses_text_format_errors(text: Any, param: str) -> None:
    with pytest.raises(BadRequest) as info:
        responses(text)
    assert info.value.param == param
