"""API key extraction and matching (the middleware itself runs in test_app.py)."""

from __future__ import annotations

import json

from helexa.gateway.auth import key_matches, presented_key, unauthorized_body


def test_keys_come_from_bearer_or_x_api_key() -> None:
    assert presented_key([(b"authorization", b"Bearer k1")]) == "k1"
    assert presented_key([(b"authorization", b"bearer  k1 ")]) == "k1"
    assert presented_key([(b"x-api-key", b"k2")]) == "k2"
    assert presented_key([(b"authorization", b"Basic abc")]) is None
    assert presented_key([]) is None


def test_matching() -> None:
    assert key_matches("k2", ["k1", "k2"])
    assert not key_matches("k3", ["k1", "k2"])
    assert not key_matches(None, ["k1"])


def test_401_body_speaks_the_route_dialect() -> None:
    openai = json.loads(unauthorized_body("/v1/chat/completions", "Invalid API key"))
    assert openai["error"]["code"] == "invalid_api_key"
    anthropic = json.loads(unauthorized_body("/v1/messages", "Invalid API key"))
    assert anthropic == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Invalid API key"},
    }
