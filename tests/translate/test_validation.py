"""Request bodies -> wire models; errors point into the JSON the client sent."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from helexa.errors import BadRequest
from helexa.protocol.anthropic import MessagesRequest
from helexa.translate.validation import body_path, parse_body


@pytest.mark.parametrize(
    ("loc", "body", "path"),
    [
        (("max_tokens",), {}, ("max_tokens",)),
        (("max_tokens",), {"max_tokens": "x"}, ("max_tokens",)),
        (
            ("messages", 0, "content", "str"),
            {"messages": [{"content": []}]},
            ("messages", 0, "content"),
        ),
        (
            ("messages", 0, "content", "list[tagged-union[...]]", 1, "text", "text"),
            {"messages": [{"content": [{}, {"type": "text"}]}]},
            ("messages", 0, "content", 1, "text"),
        ),
        (("messages", 5), {"messages": []}, ("messages",)),
    ],
)
def test_body_path(loc: tuple[int | str, ...], body: Any, path: tuple[int | str, ...]) -> None:
    assert body_path(loc, body) == path


def test_parse_body_returns_the_model() -> None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}

    assert parse_body(body, MessagesRequest).max_tokens == 1


class Pair(BaseModel):
    a: int
    b: int


def test_parse_body_reports_the_first_error_and_counts_the_rest() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_body({"a": "x"}, Pair)

    assert caught.value.param == "a"
    assert caught.value.message == (
        "a: Input should be a valid integer, unable to parse string as an integer"
        " (and 1 more error)"
    )


def test_parse_body_rejects_a_non_object() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_body([1], Pair)

    assert caught.value.param is None
