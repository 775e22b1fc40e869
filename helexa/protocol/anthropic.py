"""Anthropic Messages wire models (requests, responses, errors).

Tolerant (WireModel): clients send fields helexa does not act on
(`cache_control`, `citations`, beta options) and they ride along in
`model_extra`. Content blocks are discriminated on `type`, so an unknown
block type is a validation error rather than silently dropped content.
Stream events are plain dicts built by helexa.translate.anthropic_stream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from helexa.protocol.base import WireModel

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]
ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
]


# --- content blocks ---------------------------------------------------------


class TextBlock(WireModel):
    type: Literal["text"] = "text"
    text: str


class Base64ImageSource(WireModel):
    type: Literal["base64"] = "base64"
    media_type: str
    data: str


class URLImageSource(WireModel):
    type: Literal["url"] = "url"
    url: str


ImageSource = Annotated[Base64ImageSource | URLImageSource, Field(discriminator="type")]


class ImageBlock(WireModel):
    type: Literal["image"] = "image"
    source: ImageSource


class ToolUseBlock(WireModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


ToolResultContent = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(WireModel):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str | list[ToolResultContent] | None = None
    is_error: bool = False


class ThinkingBlock(WireModel):
    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(WireModel):
    type: Literal["redacted_thinking"] = "redacted_thinking"
    data: str


RequestContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]
ResponseContentBlock = Annotated[
    TextBlock | ThinkingBlock | ToolUseBlock, Field(discriminator="type")
]


# --- requests ---------------------------------------------------------------


class MessageParam(WireModel):
    # "system" is not in Anthropic's API, but some clients send it; it is merged
    # into the leading system prompt.
    role: Literal["user", "assistant", "system"]
    content: str | list[RequestContentBlock]


class Tool(WireModel):
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(WireModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(WireModel):
    # "adaptive" lets the model decide; for a local model that means "allowed".
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(default=None, ge=1)


class Metadata(WireModel):
    user_id: str | None = None


class JSONOutputFormat(WireModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(WireModel):
    format: JSONOutputFormat | None = None
    effort: str | None = None  # accepted and ignored: a local model has one effort


class PromptFields(WireModel):
    """What decides the prompt: shared by /v1/messages and /v1/messages/count_tokens."""

    model: str = Field(min_length=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None


class MessagesRequest(PromptFields):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None
    # Accepted and ignored on purpose (docs/dialects.md says why for each): they steer
    # Anthropic's own service (prompt cache, tiers, fast mode, code containers, region,
    # diagnostics) and have no counterpart on a neuron.
    cache_control: dict[str, Any] | None = None
    service_tier: str | None = None
    speed: str | None = None
    container: str | dict[str, Any] | None = None
    inference_geo: str | None = None


class CountTokensRequest(PromptFields):
    pass


class CountTokensResponse(WireModel):
    input_tokens: int


# --- responses --------------------------------------------------------------


class Usage(WireModel):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class Message(WireModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ResponseContentBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: Usage


class ErrorDetail(WireModel):
    type: str
    message: str


class ErrorResponse(WireModel):
    type: Literal["error"] = "error"
    error: ErrorDetail
