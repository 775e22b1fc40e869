"""Bootstrap's pure parts and its health wait (against a real server on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from helexa.config.fleet import NeuronEntry
from helexa.deploy.bootstrap import (
    BootstrapReport,
    describe_facts,
    fleet_values,
    preflight,
    read_token,
    summary,
    wait_healthy,
    wheel_version,
)
from helexa.deploy.facts import GpuInfo, HostFacts, OsRelease
from helexa.errors import DeployError
from helexa.testing.neuron_proc import free_port, serve_in_process

FEDORA = HostFacts(
    os=OsRelease("fedora", "40", pretty_name="Fedora Linux 40"),
    arch="x86_64",
    python=(3, 12, 4),
    systemd=True,
    gpus=(GpuInfo("NVIDIA GeForce RTX 4090", 24564, "8.9", "550.54.14"),),
    disk_free_mb=50_000,
)


def test_wheel_version() -> None:
    assert wheel_version(Path("dist/helexa-0.3.1-py3-none-any.whl")) == "0.3.1"
    with pytest.raises(DeployError, match="not a wheel"):
        wheel_version(Path("helexa.tar.gz"))


def test_preflight_refuses_what_cannot_work_and_warns_on_the_rest() -> None:
    assert preflight(FEDORA, "rpm") == []
    debian = HostFacts(**{**FEDORA.__dict__, "os": OsRelease("debian", "12", ("debian",))})
    with pytest.raises(DeployError, match="Fedora/RHEL-family"):
        preflight(debian, "rpm")
    old_python = HostFacts(**{**FEDORA.__dict__, "python": (3, 9, 18)})
    with pytest.raises(DeployError, match=r"python3 >= 3\.11 .*found 3\.9\.18"):
        preflight(old_python, "pip")
    full = HostFacts(**{**FEDORA.__dict__, "disk_free_mb": 100})
    with pytest.raises(DeployError, match="only 100 MiB free"):
        preflight(full, "pip")
    bare = HostFacts(**{**FEDORA.__dict__, "gpus": (), "systemd": False})
    assert preflight(bare, "pip") == [
        "no NVIDIA GPU found: the neuron will serve on CPU",
        "systemd is not running: the neuron runs under a supervisor script",
    ]
    broken = HostFacts(**{**FEDORA.__dict__, "gpus": (), "gpu_error": "driver mismatch"})
    assert preflight(broken, "rpm") == ["nvidia-smi failed: driver mismatch"]


def test_descriptions() -> None:
    assert describe_facts(FEDORA) == (
        "Fedora Linux 40, x86_64, Python 3.12.4, systemd, NVIDIA GeForce RTX 4090 (24564 MiB)"
    )
    entry = NeuronEntry(name="beast", endpoint="http://beast:13131", ssh="root@beast")
    report = BootstrapReport(
        FEDORA,
        (),
        False,
        {
            "version": "0.1.0",
            "devices": [
                {
                    "kind": "cuda",
                    "index": 0,
                    "name": "RTX 4090",
                    "memory_free_mb": 24000,
                    "memory_total_mb": 24564,
                }
            ],
        },
    )
    assert summary(report, entry) == (
        "beast: no changes; helexa 0.1.0 at http://beast:13131; "
        "devices: cuda:0 RTX 4090 24000/24564 MiB free"
    )
    assert fleet_values(entry) == {
        "endpoint": "http://beast:13131",
        "ssh": "root@beast",
        "install": "rpm",
    }


def _neuron_stub(ready_after: int) -> Starlette:
    """/health fails `ready_after` times, then answers; /discovery wants the token."""
    calls = {"health": 0}

    async def health(_: Request) -> JSONResponse:
        calls["health"] += 1
        if calls["health"] <= ready_after:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def discovery(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != "Bearer t0ken":
            return JSONResponse({"error": {"message": "no"}}, status_code=401)
        return JSONResponse({"version": "9.9", "devices": []})

    return Starlette(routes=[Route("/health", health), Route("/discovery", discovery)])


async def test_wait_healthy_polls_until_ready_then_reads_discovery() -> None:
    async with serve_in_process(_neuron_stub(ready_after=2)) as url:
        assert await wait_healthy(url, "t0ken", 10) == {"version": "9.9", "devices": []}
        with pytest.raises(DeployError, match="/discovery answered 401"):
            await wait_healthy(url, "wrong", 10)


async def test_wait_healthy_gives_up_with_the_last_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    with pytest.raises(DeployError, match=r"not healthy after 1s \(ConnectError"):
        await wait_healthy(url, None, 1)


def test_an_empty_token_file_stops_the_bootstrap(tmp_path: Path) -> None:
    """An empty file copied to the host would start its neuron without auth."""
    (tmp_path / "fleet.token").write_text("\n")
    entry = NeuronEntry(
        name="beast", endpoint="http://beast:13131", token_file=str(tmp_path / "fleet.token")
    )
    with pytest.raises(DeployError, match="is empty"):
        read_token(entry)


def test_preflight_refuses_a_python_the_service_user_cannot_run() -> None:
    pyenv = HostFacts(
        **{**FEDORA.__dict__, "python_paths": ((0o700, "root", "/root"), (0o755, "root", "/"))}
    )
    with pytest.raises(DeployError, match=r"the service user helexa cannot run python3"):
        preflight(pyenv, "pip", "helexa")
    assert preflight(pyenv, "pip", "root") == preflight(FEDORA, "pip", "root")
    assert preflight(pyenv, "rpm", "helexa") == []  # the RPM brings its own interpreter
