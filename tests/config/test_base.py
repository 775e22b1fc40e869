from __future__ import annotations

import pytest
from pydantic import ValidationError

from helexa.config.base import StrictModel, table_entries


class _Section(StrictModel):
    count: int = 0
    ratio: float = 0.5
    enabled: bool = False


@pytest.mark.parametrize(("key", "value"), [("count", "2"), ("enabled", "yes"), ("enabled", 1)])
def test_values_are_not_coerced(key: str, value: object) -> None:
    with pytest.raises(ValidationError):
        _Section.model_validate({key: value})


def test_an_int_is_a_float() -> None:
    assert _Section.model_validate({"ratio": 1}).ratio == 1.0


def test_unknown_keys_are_rejected_and_models_are_frozen() -> None:
    with pytest.raises(ValidationError, match="extra"):
        _Section.model_validate({"cont": 1})
    section = _Section()
    with pytest.raises(ValidationError):
        section.count = 3  # type: ignore[misc]


def test_table_entries_skips_what_is_not_a_table() -> None:
    data = {"neurons": [{"name": "a"}, "junk", {"name": "b"}], "gateway": {}}
    assert table_entries(data, "neurons") == [(0, {"name": "a"}), (2, {"name": "b"})]
    assert table_entries(data, "gateway") == []
    assert table_entries(data, "missing") == []
