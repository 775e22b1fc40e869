"""Pure OpenAI <-> Anthropic translation: requests, responses, streams, errors.

The gateway's /v1/messages route parses and translates the request
(anthropic_request), sends it to a neuron as OpenAI, and translates the reply
(anthropic_response) or the stream (anthropic_stream) back. Nothing here does
I/O; docs/dialects.md lists every rule.
"""

from helexa.translate.anthropic_request import (
    anthropic_to_openai,
    messages_to_chat_request,
    parse_count_tokens_request,
    parse_messages_request,
    tokenize_request,
)
from helexa.translate.anthropic_response import chat_completion_to_message
from helexa.translate.anthropic_stream import (
    PING_SSE,
    AnthropicStreamTranslator,
    Event,
    ping_event,
    render_anthropic_sse,
)
from helexa.translate.errors import (
    anthropic_error_type,
    api_error_to_anthropic,
    exception_to_anthropic,
    openai_error_to_anthropic,
)

__all__ = [
    "PING_SSE",
    "AnthropicStreamTranslator",
    "Event",
    "anthropic_error_type",
    "anthropic_to_openai",
    "api_error_to_anthropic",
    "chat_completion_to_message",
    "exception_to_anthropic",
    "messages_to_chat_request",
    "openai_error_to_anthropic",
    "parse_count_tokens_request",
    "parse_messages_request",
    "ping_event",
    "render_anthropic_sse",
    "tokenize_request",
]
