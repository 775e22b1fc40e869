"""Hypothesis strategies from an OpenAPI document's JSON schemas (a small stand-in for
hypothesis-jsonschema, which is not installed).

`body_for(schema)` draws mostly schema-shaped objects whose leaves are sometimes
the wrong type, plus now and then arbitrary JSON: near-valid requests reach deep
into the handlers, the rest exercise the validators.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
ANY_JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Lengths that make the tiny model generate for long are not what is being tested.
LENGTH_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "min_tokens")
MAX_DEPTH = 4


def body_for(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    shaped = _strategy(schema, components, 0).map(_cap_lengths)
    return st.one_of(shaped, shaped, shaped, ANY_JSON)


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = components[ref.rsplit("/", 1)[-1]]
        return resolved
    return schema


def _strategy(
    schema: dict[str, Any], components: dict[str, Any], depth: int
) -> st.SearchStrategy[Any]:
    schema = _resolve(schema, components)
    if depth > MAX_DEPTH:
        return JSON_LEAF
    if "const" in schema:
        return st.just(schema["const"]) | JSON_LEAF
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | JSON_LEAF
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return st.one_of([_strategy(s, components, depth + 1) for s in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_strategy({**schema, "type": k}, components, depth) for k in kind])
    if kind == "object" or "properties" in schema:
        return _object(schema, components, depth)
    if kind == "array":
        items = _strategy(schema.get("items", {}), components, depth + 1)
        return st.lists(items, max_size=3)
    if kind == "string":
        return st.text(max_size=40) | JSON_LEAF
    if kind == "integer":
        return st.integers(min_value=-(2**40), max_value=2**40) | JSON_LEAF
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, width=32) | JSON_LEAF
    if kind == "boolean":
        return st.booleans() | JSON_LEAF
    if kind == "null":
        return st.none()
    return ANY_JSON


def _object(
    schema: dict[str, Any], components: dict[str, Any], depth: int
) -> st.SearchStrategy[Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    fields = {name: _strategy(sub, components, depth + 1) for name, sub in properties.items()}

    @st.composite
    def draw(draw_from: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, strategy in fields.items():
            # Required fields are almost always there; optional ones about half the time.
            present = draw_from(st.integers(0, 9)) < (9 if name in required else 5)
            if present:
                out[name] = draw_from(strategy)
        return out

    return draw()


def _cap_lengths(body: Any) -> Any:
    if isinstance(body, dict):
        for name in LENGTH_FIELDS:
            value = body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 8:
                body[name] = 8
    return body


def mutated(
    valid: dict[str, Any], schema: dict[str, Any], components: dict[str, Any]
) -> st.SearchStrategy[Any]:
    """A valid body with one or two fields replaced by values drawn from their schema
    (sometimes the wrong type): requests that pass the parser and reach the model."""
    properties: dict[str, Any] = _resolve(schema, components).get("properties", {})
    names = sorted(properties)
    if not names:
        return st.just(valid)
    field = st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), _strategy(properties[name], components, 1))
    )

    def apply(changes: list[tuple[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = _cap_lengths(valid | dict(changes))
        return body

    return st.lists(field, min_size=1, max_size=2).map(apply)
