from __future__ import annotations

import math

import pytest
from pydantic import BaseModel, ValidationError

from helexa.config.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("500ms", 0.5),
        ("1m500ms", 60.5),
        ("1.5s", 1.5),
        ("2d", 172800.0),
        ("45", 45.0),
        ("0", 0.0),
        ("forever", math.inf),
        ("Forever", math.inf),
    ],
)
def test_parse_duration_accepts(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "30x", "30 minutes", "-5s", "1h30", "h1", "5s!", "∞"])
def test_parse_duration_rejects_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration.*1h30m"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.0, 0.25, 1.0, 59.0, 90.0, 1800.0, 5400.0, 90061.0, math.inf])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_is_short() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.5) == "500ms"
    assert format_duration(math.inf) == "forever"


class _Timeouts(BaseModel):
    keep_alive: Duration


@pytest.mark.parametrize(("raw", "seconds"), [(30, 30.0), (2.5, 2.5), ("5m", 300.0)])
def test_duration_field_accepts_numbers_and_strings(raw: object, seconds: float) -> None:
    assert _Timeouts.model_validate({"keep_alive": raw}).keep_alive == seconds


@pytest.mark.parametrize(
    ("raw", "message"),
    [(True, "expected a duration"), (-1, "negative"), ("5x", "invalid duration")],
)
def test_duration_field_rejects(raw: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _Timeouts.model_validate({"keep_alive": raw})
