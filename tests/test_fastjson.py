"""The stream JSON helpers: compact UTF-8 out, the stdlib's errors in."""

from __future__ import annotations

import json

import pytest

from helexa import fastjson


def test_dumps_is_compact_utf8_like_the_stdlib() -> None:
    value = {"type": "text_delta", "text": "é 🙂 \u2028", "n": [1, 2.5, None, True]}
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert fastjson.dumps(value) == expected


def test_dumps_falls_back_for_what_orjson_refuses() -> None:
    big = {"seed": 2**70}
    assert fastjson.dumps(big) == b'{"seed":1180591620717411303424}'


def test_loads_raises_value_error() -> None:
    assert fastjson.loads(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(ValueError):
        fastjson.loads(b"{not json")
