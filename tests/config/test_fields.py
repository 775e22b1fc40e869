from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from helexa.config.fields import (
    BASE_DIR,
    HttpEndpoint,
    ListenAddress,
    RelativePath,
    endpoint_host,
    is_loopback_host,
    parse_listen,
)


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("127.0.0.1:31313", ("127.0.0.1", 31313)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:13131", ("::1", 13131)),
        ("gateway.internal:80", ("gateway.internal", 80)),
    ],
)
def test_parse_listen(address: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(address) == parsed


@pytest.mark.parametrize("address", ["31313", ":31313", "host:", "host:0", "host:70000", "h:x"])
def test_parse_listen_rejects(address: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(address)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("beast.internal", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


class _Fields(BaseModel):
    listen: ListenAddress = "127.0.0.1:1"
    endpoint: HttpEndpoint = "http://127.0.0.1:1"
    path: RelativePath | None = None


def test_relative_path_resolves_against_the_base_dir(tmp_path: Path) -> None:
    fields = _Fields.model_validate({"path": "models/tiny"}, context={BASE_DIR: tmp_path})
    assert fields.path == tmp_path / "models" / "tiny"


def test_absolute_path_is_kept(tmp_path: Path) -> None:
    fields = _Fields.model_validate({"path": "/srv/m"}, context={BASE_DIR: tmp_path})
    assert fields.path == Path("/srv/m")


def test_path_must_be_a_string() -> None:
    with pytest.raises(ValidationError, match="expected a path string"):
        _Fields.model_validate({"path": 5})


def test_endpoint_drops_trailing_slash_and_keeps_its_host() -> None:
    endpoint = _Fields.model_validate({"endpoint": "http://big.internal:8000/v1/"}).endpoint
    assert endpoint == "http://big.internal:8000/v1"
    assert endpoint_host(endpoint) == "big.internal"


@pytest.mark.parametrize("url", ["ftp://x", "beast:13131", "http://", "http://h:99999"])
def test_endpoint_rejects(url: str) -> None:
    with pytest.raises(ValidationError):
        _Fields.model_validate({"endpoint": url})


def test_listen_rejects_a_bare_port() -> None:
    with pytest.raises(ValidationError, match="host:port"):
        _Fields.model_validate({"listen": "31313"})
