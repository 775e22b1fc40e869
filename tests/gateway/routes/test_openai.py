"""routes.openai.upstream_payload: what goes upstream, byte for byte where possible."""

from __future__ import annotations

import json

from helexa.gateway.routes.openai import upstream_payload


def _raw(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


def test_an_unchanged_non_streamed_body_goes_up_as_sent() -> None:
    raw = b'{"model":"m",  "messages": []}'
    assert upstream_payload(raw, json.loads(raw), "m", stream=False) == (raw, False)


def test_a_stream_that_asks_for_usage_goes_up_as_sent() -> None:
    body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    raw = _raw(body)
    assert upstream_payload(raw, json.loads(raw), "m", stream=True) == (raw, False)


def test_a_stream_without_options_gets_usage_spliced_in_and_hidden() -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "{x}"}]}
    payload, hide = upstream_payload(_raw(body), dict(body), "m", stream=True)
    assert hide is True
    assert json.loads(payload) == {**body, "stream_options": {"include_usage": True}}


def test_other_stream_options_are_kept_when_usage_is_added() -> None:
    body = {"model": "m", "stream": True, "stream_options": {"continuous_usage_stats": True}}
    payload, hide = upstream_payload(_raw(body), dict(body), "m", stream=True)
    assert hide is True
    assert json.loads(payload)["stream_options"] == {
        "continuous_usage_stats": True,
        "include_usage": True,
    }


def test_a_null_stream_options_is_replaced_not_duplicated() -> None:
    body = {"model": "m", "stream": True, "stream_options": None}
    payload, _ = upstream_payload(_raw(body), dict(body), "m", stream=True)
    assert json.loads(payload)["stream_options"] == {"include_usage": True}


def test_an_alias_is_rewritten_to_the_model_id() -> None:
    body: dict[str, object] = {"model": "alias", "messages": []}
    payload, hide = upstream_payload(_raw(body), dict(body), "org/model", stream=False)
    assert (json.loads(payload), hide) == ({"model": "org/model", "messages": []}, False)
