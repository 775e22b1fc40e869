"""OpenAI Responses API wire models (the request; responses and events are plain dicts
built by helexa.translate.responses_response / responses_stream).

Tolerant (WireModel) like every wire model: clients send `text`,
`truncation`, `client_metadata`... that helexa accepts and ignores
(docs/dialects.md lists them). Input items are discriminated on `type`; a
message item may leave `type` out (the API's "easy input message"), so the
discriminator defaults it to "message". Tools are discriminated the same way:
`function`, `namespace` (a named group of function tools, as Codex sends its
sub-agent tools), `custom` (a freeform tool whose input is one string, as
Codex's `apply_patch`) and any other type, which is a hosted tool
(`web_search`, `file_search`, ...) that OpenAI runs server-side.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from helexa.protocol.base import WireModel

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


# --- content parts ----------------------------------------------------------


class InputText(WireModel):
    type: Literal["input_text"] = "input_text"
    text: str


class OutputText(WireModel):
    """Assistant text sent back as input (a previous turn's output)."""

    type: Literal["output_text"] = "output_text"
    text: str


class InputImage(WireModel):
    type: Literal["input_image"] = "input_image"
    image_url: str | None = None  # a URL or a data: URL
    file_id: str | None = None  # helexa stores no files: rejected when set
    detail: str | None = None


class Refusal(WireModel):
    type: Literal["refusal"] = "refusal"
    refusal: str


ContentPart = Annotated[InputText | OutputText | InputImage | Refusal, Field(discriminator="type")]


# --- input items ------------------------------------------------------------


class MessageItem(WireModel):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None


class FunctionCallItem(WireModel):
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str  # JSON text, as the model produced it
    namespace: str | None = None  # set when `name` is a tool of a namespace tool
    id: str | None = None


class FunctionCallOutputItem(WireModel):
    type: Literal["function_call_output"] = "function_call_output"
    call_id: str
    output: str | list[ContentPart]


class CustomToolCallItem(WireModel):
    """A call of a `custom` tool: its input is free text, not JSON arguments."""

    type: Literal["custom_tool_call"] = "custom_tool_call"
    call_id: str
    name: str
    input: str
    namespace: str | None = None
    id: str | None = None


class CustomToolCallOutputItem(WireModel):
    type: Literal["custom_tool_call_output"] = "custom_tool_call_output"
    call_id: str
    output: str | list[ContentPart]


class ReasoningText(WireModel):
    type: Literal["reasoning_text", "summary_text", "text"]
    text: str


class ReasoningItem(WireModel):
    type: Literal["reasoning"] = "reasoning"
    id: str | None = None
    summary: list[ReasoningText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None  # helexa's own carries the text (reasoning_token)


def _item_type(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "message"))
    return str(getattr(value, "type", "message"))


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[CustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[CustomToolCallOutputItem, Tag("custom_tool_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(_item_type),
]


# --- tools and options ------------------------------------------------------


class FunctionTool(WireModel):
    type: Literal["function"] = "function"
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamespaceTool(WireModel):
    """Function tools grouped under a name; the model calls them as `namespace` + `name`."""

    type: Literal["namespace"]
    name: str = Field(min_length=1)
    description: str | None = None
    tools: list[FunctionTool]


class CustomTool(WireModel):
    """A freeform tool: the model writes its input as text, optionally in a grammar
    (`format: {"type": "grammar", "syntax": "lark", "definition": ...}`)."""

    type: Literal["custom"]
    name: str = Field(min_length=1)
    description: str | None = None
    format: dict[str, Any] | None = None


class HostedTool(WireModel):
    """A tool OpenAI runs itself (`web_search`, `file_search`, `code_interpreter`, ...):
    the fleet cannot, so it is kept out of what the model sees."""

    type: str


def _tool_type(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("function", "namespace", "custom") else "hosted"


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[NamespaceTool, Tag("namespace")]
    | Annotated[CustomTool, Tag("custom")]
    | Annotated[HostedTool, Tag("hosted")],
    Discriminator(_tool_type),
]


class FunctionToolChoice(WireModel):
    type: Literal["function", "custom"]
    name: str


class HostedToolChoice(WireModel):
    """`{"type": "web_search"}` and the like: forces a hosted tool (always a 400 here)."""

    type: str


def _tool_choice_type(value: Any) -> str:
    if isinstance(value, str):
        return "mode"
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "function" if kind in ("function", "custom") else "hosted"


ToolChoice = Annotated[
    Annotated[Literal["auto", "none", "required"], Tag("mode")]
    | Annotated[FunctionToolChoice, Tag("function")]
    | Annotated[HostedToolChoice, Tag("hosted")],
    Discriminator(_tool_choice_type),
]


class ReasoningConfig(WireModel):
    effort: ReasoningEffort | None = None
    summary: str | None = None


class ResponsesRequest(WireModel):
    model: str = Field(min_length=1)
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    reasoning: ReasoningConfig | None = None
    stream: bool = False
    previous_response_id: str | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None  # served statelessly whatever it says (nothing is stored)
    include: list[str] | None = None  # "reasoning.encrypted_content" is acted on
    prompt_cache_key: str | None = None  # the session key routing may use
