"""The gateway's neuron control client against a real neuron (tiny model) on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helexa.errors import ModelNotFound, UpstreamError
from helexa.fleet.neuron_client import NeuronClient, error_from_response
from helexa.protocol.neuron import LoadRequest, TokenizeRequest
from helexa.testing.neuron_proc import InProcessNeuron, free_port
from tests.gateway.harness import neuron_config

TOKEN = "s3cret"


@dataclass(frozen=True)
class Address:
    name: str
    endpoint: str
    token_file: Path | None


@pytest.fixture
async def neuron() -> AsyncIterator[InProcessNeuron]:
    async with InProcessNeuron.start(neuron_config("n"), token=TOKEN) as n:
        yield n


@pytest.fixture
async def client() -> AsyncIterator[NeuronClient]:
    c = NeuronClient()
    yield c
    await c.close()


@pytest.fixture
def address(tmp_path: Path, neuron: InProcessNeuron) -> Address:
    token_file = tmp_path / "fleet.token"
    token_file.write_text(TOKEN + "\n")
    return Address("n", neuron.url, token_file)


async def test_load_tokenize_unload(
    client: NeuronClient, address: Address, tiny_model_dir: Path
) -> None:
    info = await client.load(address, LoadRequest(model="t", path=str(tiny_model_dir)))
    assert (info.id, info.state) == ("t", "loaded")
    count = await client.tokenize(
        address, TokenizeRequest(model="t", messages=[{"role": "user", "content": "hello"}])
    )
    assert count > 1
    after = await client.unload(address, "t")
    assert all(m.id != "t" for m in after.models)


async def test_the_token_file_is_read_on_every_call(
    client: NeuronClient, address: Address, tiny_model_dir: Path
) -> None:
    request = TokenizeRequest(model="t", path=str(tiny_model_dir), prompt="hi")
    assert await client.tokenize(address, request) > 0
    assert address.token_file is not None
    address.token_file.write_text("rotated-away")
    with pytest.raises(UpstreamError):
        await client.tokenize(address, request)


async def test_neuron_errors_keep_their_meaning(client: NeuronClient, address: Address) -> None:
    with pytest.raises(ModelNotFound):
        await client.load(address, LoadRequest(model="no/such-model"))


async def test_an_unreachable_neuron_is_an_upstream_error(client: NeuronClient) -> None:
    dead = Address("dead", f"http://127.0.0.1:{free_port()}", None)
    with pytest.raises(UpstreamError):
        await client.unload(dead, "x")


def test_error_envelopes_map_to_the_error_tree() -> None:
    raw = b'{"error": {"message": "full", "code": "insufficient_memory"}}'
    err = error_from_response("n", 507, raw)
    assert (err.status, err.code) == (507, "insufficient_memory")
    assert "full" in err.message
    assert error_from_response("n", 500, b"not json").status == 500
    assert error_from_response("n", 401, b"{}").status == 502
    too_long = b'{"error": {"message": "prompt is 9000 tokens", "code": "context_length_exceeded"}}'
    err = error_from_response("n", 400, too_long)  # clients (Codex) act on this code
    assert (err.status, err.code, err.type) == (
        400,
        "context_length_exceeded",
        "invalid_request_error",
    )
