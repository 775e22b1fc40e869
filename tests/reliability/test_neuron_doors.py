"""The neuron's doors: no start without a real token off loopback, nothing a web page can
drive, one Authorization header (on the gateway too), all on real servers on loopback."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import InProcessNeuron
from tests.reliability.hostile import is_dialect_error, valid_body
from tests.reliability.stack import GATEWAY_KEY, NEURON_TOKEN, Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def neuron_exit(tmp_path: Path, toml: str, listen: str) -> tuple[int, str]:
    """Run `helexa neuron` with `toml`; its exit code and stderr (it must not start)."""
    config = tmp_path / "neuron.toml"
    config.write_text(toml)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "helexa", "neuron", "--config", str(config), "--listen", listen),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_an_empty_token_file_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "fleet.token").write_text("\n")
    toml = '[neuron]\ntoken_file = "fleet.token"\noffline = true\n'
    code, stderr = await neuron_exit(tmp_path, toml, "127.0.0.1:1")
    assert code == 1
    assert "is empty" in stderr


async def test_no_token_off_loopback_refuses_to_start(tmp_path: Path) -> None:
    code, stderr = await neuron_exit(tmp_path, "[neuron]\noffline = true\n", "0.0.0.0:1")
    assert code == 1
    assert "needs a token_file" in stderr


async def test_a_request_from_a_web_page_is_refused(stack: Stack) -> None:
    async with stack.neuron_http() as http:
        response = await http.post(
            "/models/load",
            json={"model": "x", "path": "/tmp"},
            headers={"Origin": "http://evil.example"},
        )
    assert response.status_code == 403
    assert is_dialect_error("openai", response.json())


@pytest.mark.parametrize("path", ["/models/load", "/models/unload", "/v1/chat/completions"])
async def test_a_post_without_a_json_content_type_is_refused(stack: Stack, path: str) -> None:
    """A no-cors fetch with a Blob body sends no Content-Type at all; that gets 415 too."""
    async with stack.neuron_http() as http:
        response = await http.post(path, content=b'{"model": "x"}')
    assert response.status_code == 415
    assert is_dialect_error("openai", response.json())


async def test_a_tokenless_neuron_answers_loopback_names_only() -> None:
    """DNS rebinding: a site's own name resolved to 127.0.0.1 reaches an open neuron."""
    config = NeuronConfig.model_validate({"neuron": {"name": "open", "offline": True}})
    async with (
        InProcessNeuron.start(config) as neuron,
        httpx.AsyncClient(base_url=neuron.url, timeout=30) as http,
    ):
        rebound = await http.get("/models", headers={"Host": "evil.example:13131"})
        local = await http.get("/models", headers={"Host": "localhost:13131"})
        direct = await http.get("/models")
    assert rebound.status_code == 403
    assert is_dialect_error("openai", rebound.json())
    assert local.status_code == 200
    assert direct.status_code == 200


@pytest.mark.parametrize(
    ("side", "path", "dialect", "status"),
    [
        ("neuron", "/v1/chat/completions", "openai", 400),
        ("gateway", "/v1/chat/completions", "openai", 401),
        ("gateway", "/v1/messages", "anthropic", 401),
    ],
)
async def test_two_authorization_headers_are_refused(
    stack: Stack, side: str, path: str, dialect: str, status: int
) -> None:
    """Both the valid secret and another: which one counts is never guessed."""
    secret = GATEWAY_KEY if side == "gateway" else NEURON_TOKEN
    headers = [
        ("content-type", "application/json"),
        ("authorization", "Bearer someone-else"),
        ("authorization", f"Bearer {secret}"),
    ]
    base = stack.gateway.url if side == "gateway" else stack.neuron.url
    kind = "anthropic" if dialect == "anthropic" else "chat"
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        response = await http.post(path, json=valid_body(kind), headers=headers)
    assert response.status_code == status, response.text
    assert is_dialect_error(dialect, response.json())
    assert "several" in response.text


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"model": "x", "path": "../x"}, "absolute"),
        ({"model": "x", "path": "etc"}, "absolute"),
        ({"model": "x", "path": "/etc"}, "outside"),
        ({"model": "x", "path": "{root}/../../etc"}, "outside"),
        ({"model": "x", "path": "{root}/../does-not-exist"}, "outside"),
        ({"model": "Qwen/Qwen3-0.6B"}, "allow_hub_ids"),
    ],
)
async def test_loads_are_confined_to_the_model_roots(
    roots_neuron: InProcessNeuron, tiny_model_dir: Path, body: dict[str, str], why: str
) -> None:
    """Neither the path nor whether it exists comes back; nothing is loaded or listed."""
    body = {k: v.format(root=tiny_model_dir) for k, v in body.items()}
    async with roots_neuron.http() as http:
        loaded = await http.post("/models/load", json=body)
        counted = await http.post("/v1/tokenize", json=body | {"prompt": "hi"})
        listed = (await http.get("/models")).json()["models"]
    for response in (loaded, counted):
        assert response.status_code == 400, response.text
        assert is_dialect_error("openai", response.json())
        assert why in response.json()["error"]["message"]
        assert "etc" not in response.json()["error"]["message"]
    assert listed == []
    assert roots_neuron.loader.calls == []


async def test_a_path_inside_the_model_roots_loads(
    roots_neuron: InProcessNeuron, tiny_model_dir: Path
) -> None:
    async with roots_neuron.http() as http:
        counted = await http.post(
            "/v1/tokenize", json={"model": "t", "path": str(tiny_model_dir), "prompt": "hi"}
        )
    assert counted.status_code == 200, counted.text
    await roots_neuron.load("inside", tiny_model_dir / ".." / tiny_model_dir.name)
    assert roots_neuron.loader.calls == ["inside"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def roots_neuron(tiny_model_dir: Path) -> AsyncIterator[InProcessNeuron]:
    """A neuron that may download (offline = false) but only loads from its model root."""
    config = NeuronConfig.model_validate(
        {
            "neuron": {"name": "roots", "offline": False, "model_roots": [str(tiny_model_dir)]},
            "devices": {"reserve_mb": 0},
        }
    )
    async with InProcessNeuron.start(config, token=NEURON_TOKEN) as neuron:
        yield neuron
