"""The generic strict loader: syntax errors, all errors at once, overrides, any model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from helexa.config.base import Loc
from helexa.config.fleet import FleetConfig
from helexa.config.loader import (
    ENVIRONMENT,
    Override,
    format_loc,
    load_toml,
    parse_toml,
    read_toml,
    validate,
)
from helexa.errors import ConfigError, ConfigErrors

WriteToml = Callable[[str, str], Path]
ErrorAt = Callable[[list[ConfigError], int, str], ConfigError]


def test_syntax_error_names_its_line(write_toml: WriteToml) -> None:
    path = write_toml("fleet.toml", '[gateway]\nlisten = "127.0.0.1:1"\napi_keys = [\n"a" "b"]\n')
    with pytest.raises(ConfigErrors) as caught:
        load_toml(path, FleetConfig)
    (error,) = caught.value.errors
    assert error.file == path and error.line == 4
    assert error.message.startswith("TOML syntax:")


def test_syntax_error_names_column_key_and_line_text(write_toml: WriteToml) -> None:
    path = write_toml("models.toml", '[[models]]\nid = "m"\n[models.sampling]\nmax_tokens = 25 6\n')
    with pytest.raises(ConfigErrors) as caught:
        load_toml(path, FleetConfig)
    (error,) = caught.value.errors
    assert (error.line, error.key) == (4, "max_tokens")
    assert "at column 17: `max_tokens = 25 6`" in error.message
    assert str(error).startswith(f"{path}:4: max_tokens: TOML syntax:")


def test_duplicate_toml_key_is_a_syntax_error(write_toml: WriteToml) -> None:
    path = write_toml("fleet.toml", '[gateway]\nlisten = "a:1"\nlisten = "b:2"\n')
    with pytest.raises(ConfigErrors) as caught:
        load_toml(path, FleetConfig)
    assert caught.value.errors[0].line == 3


def test_every_error_of_a_file_is_reported_at_once_in_line_order(
    write_toml: WriteToml, error_at: ErrorAt
) -> None:
    path = write_toml(
        "fleet.toml",
        """
        [gateway]
        listn = "127.0.0.1:1"

        [eviction]
        keep_alive = "soon"

        [[neurons]]
        name = "a"
        endpoint = "http://127.0.0.1:1"

        [[neurons]]
        name = "a"
        endpoint = "http://127.0.0.1:2"
        """,
    )
    with pytest.raises(ConfigErrors) as caught:
        load_toml(path, FleetConfig)
    errors = caught.value.errors
    assert [e.line for e in errors] == [2, 5, 12]
    error_at(errors, 2, "gateway.listn")
    error_at(errors, 5, "eviction.keep_alive")
    error_at(errors, 12, "neurons[1].name")
    assert str(caught.value).count("\n") == 2  # one line per error


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match="cannot read"):
        read_toml(tmp_path / "missing.toml")


class _LaxSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int = 1


class _LaxFile(BaseModel):
    """A model that is not a StrictModel: the loader still locates its errors."""

    model_config = ConfigDict(extra="forbid")
    section: _LaxSection = _LaxSection()


def test_any_pydantic_model_can_be_loaded(write_toml: WriteToml) -> None:
    assert load_toml(write_toml("x.toml", "[section]\nport = 5\n"), _LaxFile).section.port == 5
    with pytest.raises(ConfigErrors) as caught:
        load_toml(write_toml("y.toml", "[section]\nport = 5\nprot = 6\n"), _LaxFile)
    assert caught.value.errors[0].line == 3
    assert "did you mean 'port'" in caught.value.errors[0].message


def test_overrides_win_and_their_errors_name_the_variable() -> None:
    source = parse_toml('[gateway]\nlisten = "127.0.0.1:1"\n', Path("fleet.toml"))
    good: dict[Loc, Override] = {
        ("gateway", "listen"): Override("HELEXA_GATEWAY__LISTEN", "0.0.0.0:2")
    }
    assert validate(source, FleetConfig, good).gateway.listen == "0.0.0.0:2"
    bad: dict[Loc, Override] = {
        ("eviction", "keep_alive"): Override("HELEXA_EVICTION__KEEP_ALIVE", "soon")
    }
    with pytest.raises(ConfigErrors) as caught:
        validate(source, FleetConfig, bad)
    (error,) = caught.value.errors
    assert error.file == Path(ENVIRONMENT) and error.key == "HELEXA_EVICTION__KEEP_ALIVE"
    assert "invalid duration" in error.message


def test_format_loc() -> None:
    assert format_loc(("neurons", 1, "endpoint")) == "neurons[1].endpoint"
    assert format_loc(("gateway",)) == "gateway"
    assert format_loc(("models", 0, "sampling", "top_p")) == "models[0].sampling.top_p"
    assert format_loc(("aliases", "claude-*")) == 'aliases."claude-*"'
