"""Field types shared by the config files: paths, listen addresses, endpoints."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError

# The loader passes the directory of the file being read under this context key.
BASE_DIR = "base_dir"


def _resolve_path(value: Any, info: ValidationInfo) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise PydanticCustomError("path_type", "expected a path string")
    path = Path(value).expanduser()
    base = (info.context or {}).get(BASE_DIR)
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


# Relative paths resolve against the directory of the file that holds them.
RelativePath = Annotated[Path, BeforeValidator(_resolve_path)]


def parse_listen(address: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"; raises ValueError."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f'expected "host:port", got {address!r}')
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is outside 1-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_listen(address: str) -> str:
    try:
        parse_listen(address)
    except ValueError as exc:
        raise PydanticCustomError("listen", str(exc)) from None
    return address


def endpoint_host(url: str) -> str:
    """The host part of an http(s) URL ("" when there is none)."""
    return urlsplit(url).hostname or ""


def _check_endpoint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError(
            "endpoint", "expected an http:// or https:// URL with a host, got '{url}'", {"url": url}
        )
    try:
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise PydanticCustomError("endpoint", "malformed port in '{url}'", {"url": url}) from None
    return url.rstrip("/")


ListenAddress = Annotated[str, AfterValidator(_check_listen)]
HttpEndpoint = Annotated[str, AfterValidator(_check_endpoint)]
