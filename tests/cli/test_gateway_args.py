"""The gateway URL and API key every gateway-reading command takes, and its refusal text."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import pytest

from helexa.cli.gateway_args import (
    ApiKeyUnreadable,
    add_gateway_arguments,
    refusal,
    resolve_api_key,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_gateway_arguments(parser)
    return parser.parse_args(argv)


def test_the_key_comes_from_the_file_then_the_flag_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELEXA_API_KEY", "from-env")
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    assert resolve_api_key(parse("--api-key-file", str(key_file))) == (
        "from-file",
        f"--api-key-file {key_file}",
    )
    assert resolve_api_key(parse("--api-key", "from-flag")) == ("from-flag", "--api-key")
    assert resolve_api_key(parse()) == ("from-env", "$HELEXA_API_KEY")
    monkeypatch.delenv("HELEXA_API_KEY")
    assert resolve_api_key(parse()) == (None, None)


def test_an_empty_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("\n")
    with pytest.raises(ApiKeyUnreadable, match="is empty"):
        resolve_api_key(parse("--api-key-file", str(tmp_path / "key")))


def test_a_401_says_where_the_key_comes_from() -> None:
    args = parse("--gateway", "http://gw")
    request = httpx.Request("GET", "http://gw/admin/usage")
    refused = httpx.HTTPStatusError("401", request=request, response=httpx.Response(401))
    args.api_key_source = None
    assert "needs an API key; set $HELEXA_API_KEY" in refusal(args, refused, "/admin/usage")
    args.api_key_source = "--api-key"
    assert "refused the API key from --api-key" in refusal(args, refused, "/admin/usage")
