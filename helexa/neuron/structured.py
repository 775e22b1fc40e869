"""A chat request's output constraint: response_format and forced tool calls -> a grammar.

- `tool_choice` "required" or a named function forces a tool call: the output
  is `<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>` (the format
  the output parser reads), the arguments matching the tool's `parameters`.
  `parallel_tool_calls: false` allows exactly one call, otherwise one or more.
- Else `response_format` {"type": "json_object"} asks for any JSON object and
  {"type": "json_schema", "json_schema": {"schema": ...}} for one matching the
  schema. `strict` changes nothing: the schema is always enforced.
- A schema the grammar library cannot enforce is a 400 naming the field and
  the library's reason (for example `Unimplemented keys: ["$dynamicRef"]`),
  raised before any generation.

An object schema that lists `properties` but says nothing of
`additionalProperties` is closed (no other keys), as xgrammar's strict mode
does for vLLM and SGLang: a small model otherwise invents keys until
`max_tokens`. The output still matches the schema as sent.

Output is compact JSON (no free whitespace). Constrained output starts at the
first generated token, so a thinking model does not think first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from helexa.errors import BadRequest
from helexa.neuron.engine.constraint import (
    Grammar,
    TokenizerGrammars,
    grammars_for,
    json_schema_grammar,
    lark_grammar,
)
from helexa.neuron.engine.spec import SamplingParams
from helexa.neuron.parser import TOOL_CLOSE, TOOL_OPEN
from helexa.protocol.openai import ChatCompletionRequest, Tool

# x-guidance options inside a lark %json block (json_schema_grammar sets them outside).
_COMPACT = {"whitespace_flexible": False}
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def wants_grammar(request: ChatCompletionRequest) -> bool:
    """Whether the request constrains its output (cheap: no tokenizer work)."""
    return bool(forced_tools(request)) or _format_schema(request) is not None


def chat_grammar(
    request: ChatCompletionRequest, grammars: Callable[[], TokenizerGrammars]
) -> Grammar | None:
    """The grammar the request's output must follow; None when it is free."""
    tools = forced_tools(request)
    if tools:
        compiled = grammars()
        for index, tool in tools:  # each schema alone first, so an error names its tool
            compiled.compile(
                json_schema_grammar(_parameters(tool)),
                f"tools[{index}].function.parameters",
            )
        lark = tool_call_lark(
            [tool for _, tool in tools],
            several=request.parallel_tool_calls is not False,
            special_tags=compiled.special_token(TOOL_OPEN) and compiled.special_token(TOOL_CLOSE),
        )
        return compiled.compile(lark_grammar(lark), "tool_choice")
    schema = _format_schema(request)
    if schema is None:
        return None
    return grammars().compile(json_schema_grammar(schema), "response_format.json_schema.schema")


def forced_tools(request: ChatCompletionRequest) -> list[tuple[int, Tool]]:
    """The tools one of which must be called (with their index in `tools`); [] = not forced."""
    choice = request.tool_choice
    tools = list(enumerate(request.tools or []))
    if choice == "required":
        if not tools:
            raise BadRequest("tool_choice 'required' needs at least one tool", param="tool_choice")
        return tools
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if choice.get("type") != "function" or not isinstance(name, str):
            raise BadRequest(
                'tool_choice must be "none", "auto", "required" or '
                '{"type": "function", "function": {"name": ...}}',
                param="tool_choice",
            )
        named = [(i, tool) for i, tool in tools if tool.function.name == name]
        if not named:
            raise BadRequest(
                f"tool_choice names {name!r}, which is not in tools", param="tool_choice"
            )
        return named[:1]
    return []


def _format_schema(request: ChatCompletionRequest) -> dict[str, Any] | None:
    """The JSON schema response_format asks for; None for text or no format."""
    form = request.response_format
    if form is None:
        return None
    kind = form.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind != "json_schema":
        raise BadRequest(
            f"response_format.type {kind!r} is not supported "
            "(expected 'text', 'json_object' or 'json_schema')",
            param="response_format.type",
        )
    spec = form.get("json_schema")
    if not isinstance(spec, dict):
        raise BadRequest(
            "response_format.json_schema is required when type is 'json_schema'",
            param="response_format.json_schema",
        )
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise BadRequest(
            "response_format.json_schema.schema must be a JSON object",
            param="response_format.json_schema.schema",
        )
    return closed_objects(schema)


def _parameters(tool: Tool) -> dict[str, Any]:
    return closed_objects(tool.function.parameters or _NO_PARAMETERS)


# Keywords whose value is a schema, a map of names to schemas, or a list of schemas.
# allOf is left out: closing each part of an intersection would reject the others' keys.
_SUBSCHEMA = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")


def closed_objects(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with `additionalProperties: false` on every object schema that lists
    `properties` and leaves additional ones unsaid (a copy; data such as `enum` or
    `default` values is left as it is)."""
    out = dict(schema)
    if "properties" in out and not {"additionalProperties", "patternProperties"} & out.keys():
        out["additionalProperties"] = False
    for key in _SUBSCHEMA:
        if isinstance(out.get(key), dict):
            out[key] = closed_objects(out[key])
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {
                name: closed_objects(sub) if isinstance(sub, dict) else sub
                for name, sub in out[key].items()
            }
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [closed_objects(sub) if isinstance(sub, dict) else sub for sub in out[key]]
    return out


def tool_call_lark(tools: list[Tool], several: bool, special_tags: bool) -> str:
    """A lark grammar of one (or, if `several`, one or more) tool calls of `tools`."""
    if special_tags:  # one special token each: lark names it in angle brackets
        open_tag, close_tag = TOOL_OPEN, TOOL_CLOSE
    else:
        open_tag, close_tag = json.dumps(TOOL_OPEN), json.dumps(TOOL_CLOSE)
    lines = ['start: call ("\\n" call)*' if several else "start: call"]
    lines.append("call: " + " | ".join(f"call_{i}" for i in range(len(tools))))
    for i, tool in enumerate(tools):
        head = json.dumps(f'\n{{"name": {json.dumps(tool.function.name)}, "arguments": ')
        lines.append(f'call_{i}: {open_tag} {head} args_{i} "}}\\n" {close_tag}')
        schema = {**_parameters(tool), "x-guidance": _COMPACT}
        lines.append(f"args_{i}: %json {json.dumps(schema)}")
    return "\n".join(lines) + "\n"


def constrained_params(
    params: SamplingParams, request: ChatCompletionRequest, model: Any
) -> SamplingParams:
    """`params` with the request's grammar for `model` (a LoadedModel), if it has one.

    A constrained row ends when its grammar is complete, on the model's eos ids, so
    `ignore_eos` and `min_tokens` (which would hold the end back) do not apply to it.
    """
    if not wants_grammar(request):
        return params
    eos = frozenset(model.eos_token_ids)
    grammar = chat_grammar(request, lambda: grammars_for(model.tokenizer, model.vocab_size, eos))
    if grammar is None:
        return params
    return replace(params, grammar=grammar, min_new_tokens=0, stop_token_ids=eos)
