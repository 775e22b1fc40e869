"""helexa.limits: the pure checks (the middleware runs end to end in tests/reliability)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from helexa.limits import is_json_content_type, nesting_depth, too_deep

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(JSON)
def test_depth_matches_the_parsed_structure(value: object) -> None:
    assert nesting_depth(json.dumps(value).encode()) == depth_of(value)


def test_brackets_inside_strings_do_not_count() -> None:
    body = json.dumps({"text": "[[[[{{{{" * 100, "escaped": '\\"[[[['}).encode()
    assert nesting_depth(body) == 1
    assert not too_deep(body, 4)


def reference_depth(body: bytes) -> int:
    """The rule in one plain pass: brackets count outside strings; a backslash in a
    string escapes the next byte; a string left open runs to the end."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                in_string = False
        elif byte == ord('"'):
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


@given(st.binary().map(lambda b: bytes(b'[]{}"\\a '[x % 8] for x in b)))
def test_depth_of_any_bytes_matches_the_plain_pass(body: bytes) -> None:
    assert nesting_depth(body) == reference_depth(body)


def test_unterminated_escapes_are_scanned_in_one_pass() -> None:
    """The ReDoS body: brackets then a quote-backslash pair repeated. A backtracking scan
    took seconds for 32 KB (quadratic); 4 MB of it would take hours, so this test could
    not finish before the suite's timeout with it."""
    body = b"[" * 65 + b'"\\' * (2 * 1024 * 1024)
    assert nesting_depth(body) == 65
    assert too_deep(body, 64)


def test_too_deep() -> None:
    assert too_deep(b"[" * 65 + b"]" * 65, 64)
    assert not too_deep(b"[" * 64 + b"]" * 64, 64)


def test_json_content_types() -> None:
    assert is_json_content_type(None)
    assert is_json_content_type("application/json; charset=utf-8")
    assert is_json_content_type("application/vnd.api+json")
    assert not is_json_content_type("text/plain")
    assert not is_json_content_type("application/x-www-form-urlencoded")
    assert not is_json_content_type("multipart/form-data; boundary=x")
