"""Durations as operators write them: "90s", "30m", "1h30m", "500ms", 45, "forever".

Parsed to float seconds; "forever" is `math.inf` so comparisons need no special case.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# One "<number><unit>" run; "ms" is listed before "m" so it wins the alternation.
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_PLAIN_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")
FOREVER = "forever"


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError naming the accepted forms."""
    if text.strip().lower() == FOREVER:
        return math.inf
    if _PLAIN_NUMBER.fullmatch(text):
        return float(text)
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(
            f'invalid duration {text!r}: use e.g. "500ms", "90s", "30m", "1h30m", '
            f'"2d", a number of seconds, or "{FOREVER}"'
        )
    return total


def format_duration(seconds: float) -> str:
    """The shortest canonical spelling of `seconds` (inverse of parse_duration)."""
    if math.isinf(seconds):
        return FOREVER
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    parts: list[str] = []
    rest = seconds
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        whole = int(rest // size)
        if whole:
            parts.append(f"{whole}{unit}")
            rest -= whole * size
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def _to_seconds(value: Any) -> float:
    # bool is an int subclass; `keep_alive = true` is a mistake, not one second.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError(
            "duration_type", 'expected a duration such as "30m" or a number of seconds'
        )
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc)) from None
    if value < 0:
        raise PydanticCustomError("duration", "a duration cannot be negative")
    return float(value)


# A config field holding a duration: accepts the forms above, stores float seconds.
Duration = Annotated[float, BeforeValidator(_to_seconds)]
