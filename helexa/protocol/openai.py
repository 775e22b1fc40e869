"""OpenAI chat/completions wire models (requests, responses, stream chunks).

Tolerant (WireModel): clients and upstreams add fields all the time. Only the
fields helexa acts on are typed; the rest ride along in `model_extra`.
Shared by the neuron, the gateway and the translation layer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from helexa.protocol.base import WireModel

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


# --- requests ---------------------------------------------------------------


class FunctionCall(WireModel):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(WireModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(WireModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class FunctionDefinition(WireModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(WireModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class StreamOptions(WireModel):
    include_usage: bool = False


class SamplingFields(WireModel):
    """The knobs both endpoints share; None = not set by the client."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)  # extension (vLLM style)
    min_p: float | None = Field(default=None, ge=0, le=1)  # extension (vLLM style)
    repetition_penalty: float | None = Field(default=None, gt=0)  # extension (vLLM style)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # int64, as OpenAI's
    stop: str | list[str] | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Extensions (vLLM names) so tests and clients can force a length on random weights.
    min_tokens: int | None = Field(default=None, ge=0)
    ignore_eos: bool = False

    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None  # checked by neuron/structured.py
    chat_template_kwargs: dict[str, Any] | None = None

    def token_limit(self) -> int | None:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens


class CompletionRequest(SamplingFields):
    prompt: str | list[int] | list[str]

    def token_limit(self) -> int | None:
        return self.max_tokens


# --- responses --------------------------------------------------------------


class PromptTokensDetails(WireModel):
    cached_tokens: int = 0  # prompt tokens served from a prefix cache, not prefilled


class Usage(WireModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class AssistantMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(WireModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason | None = None
    stop_reason: str | None = None  # the stop string that matched (vLLM)


class ChatCompletion(WireModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class CompletionChoice(WireModel):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    stop_reason: str | None = None  # the stop string that matched (vLLM)


class Completion(WireModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# --- stream chunks ----------------------------------------------------------


class FunctionCallDelta(WireModel):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(WireModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class ChatDelta(WireModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(WireModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: FinishReason | None = None
    stop_reason: str | None = None  # the stop string that matched (vLLM)


class ChatCompletionChunk(WireModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChunk(WireModel):
    """A streamed /v1/completions event (same shape as Completion)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ErrorBody(WireModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorEnvelope(WireModel):
    error: ErrorBody
