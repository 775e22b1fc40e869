"""The request translators on random and near-valid JSON: BadRequest or a result, never
any other exception (a stray KeyError/TypeError would be a 500 at the gateway)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from helexa.errors import BadRequest
from helexa.protocol.anthropic import CountTokensRequest, MessagesRequest
from helexa.protocol.responses import ResponsesRequest
from helexa.translate import anthropic_request, responses_request
from tests.reliability.figures import record
from tests.reliability.hostile import valid_body
from tests.reliability.schema_fuzz import ANY_JSON, body_for, mutated

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
OUTCOMES = {"translated": 0, "bad_request": 0}


def bodies(model: type[BaseModel], valid: dict[str, Any]) -> st.SearchStrategy[Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    return st.one_of(ANY_JSON, body_for(schema, components), mutated(valid, schema, components))


def outcome(translate: Any, body: Any) -> None:
    try:
        translate(body)
    except BadRequest:
        OUTCOMES["bad_request"] += 1
        return
    OUTCOMES["translated"] += 1


@FUZZ
@given(bodies(MessagesRequest, valid_body("anthropic")))
def test_messages_request(body: Any) -> None:
    outcome(anthropic_request.anthropic_to_openai, body)


@FUZZ
@given(bodies(CountTokensRequest, valid_body("count")))
def test_count_tokens_request(body: Any) -> None:
    def translate(raw: Any) -> Any:
        return anthropic_request.tokenize_request(anthropic_request.parse_count_tokens_request(raw))

    outcome(translate, body)


@FUZZ
@given(bodies(ResponsesRequest, {"model": "m", "input": "hello"}))
def test_responses_request(body: Any) -> None:
    def translate(raw: Any) -> Any:
        return responses_request.responses_to_chat_request(
            responses_request.parse_responses_request(raw)
        )

    outcome(translate, body)


def test_record_outcomes() -> None:
    """Runs last in this module: both outcomes must have happened, or the fuzz is blind."""
    assert OUTCOMES["translated"] > 0 and OUTCOMES["bad_request"] > 0
    record("translate_fuzz", inputs=sum(OUTCOMES.values()), **OUTCOMES)
