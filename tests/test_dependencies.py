"""The installed environment is the lock, the ranges are true, and the internals we lean on
still behave as relied upon (an upgrade that breaks one fails here, not in production)."""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import uvicorn
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"


def locked() -> dict[str, Version]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", LOCK.read_text(), flags=re.M)
    return {canonicalize_name(name): Version(version) for name, version in pins}


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["neuron"], *extras["dev"]]]


def test_every_installed_version_is_the_locked_one() -> None:
    wrong = {
        name: (str(version), metadata.version(name))
        for name, version in locked().items()
        if Version(metadata.version(name)) != version
    }
    assert wrong == {}, "run `make install` (the venv drifted from requirements.lock)"


def test_every_declared_dependency_is_locked_inside_its_range() -> None:
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared but not locked: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement.specifier}: run `make lock`"
        )


def test_every_range_has_an_upper_bound() -> None:
    unbounded = [str(r) for r in declared() if not any(s.operator in "<" for s in r.specifier)]
    assert unbounded == []


def test_the_rpm_requires_the_same_ranges() -> None:
    spec = (REPO / "rpm" / "helexa.spec").read_text()
    runtime = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for raw in [*runtime["dependencies"], *runtime["optional-dependencies"]["neuron"]]:
        requirement = Requirement(raw)
        rpm_name = "python3-" + requirement.name.replace("prometheus-client", "prometheus_client")
        line = next(
            (line for line in spec.splitlines() if re.search(rf"\b{rpm_name} ", line)), None
        )
        assert line is not None, f"rpm/helexa.spec does not require {rpm_name}"
        for specifier in requirement.specifier:
            assert f"{rpm_name} {specifier.operator} {specifier.version}" in line, line


# -- internals kept for a measured reason -----------------------------------------------
# uvicorn's HttpToolsProtocol subclass (write coalescing) is exercised end to end by
# tests/gateway/test_transport.py and test_fastlane.py; transformers' DynamicLayer
# subclass (the growing KV cache) by tests/neuron/test_engine_kv.py.


def test_uvicorn_server_still_installs_signals_through_capture_signals() -> None:
    # `helexa serve` owns SIGINT/SIGTERM by overriding this hook (helexa/serve/server.py).
    assert "capture_signals" in vars(uvicorn.Server)
    assert "self.capture_signals()" in inspect.getsource(uvicorn.Server.serve)


@pytest.mark.asyncio
async def test_starlette_response_headers_without_its_init() -> None:
    # SSEResponse skips Response.__init__ (no body to render) and relies on init_headers.
    from helexa.sse import SSEResponse

    async def nothing() -> object:
        yield b""  # pragma: no cover

    response = SSEResponse(nothing())  # type: ignore[arg-type]
    headers = dict(response.raw_headers)
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"cache-control"] == b"no-cache"
    assert b"content-length" not in headers
