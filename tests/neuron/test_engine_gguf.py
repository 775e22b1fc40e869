"""GGUF files: the header read, the dequantized budget check, and errors that keep the neuron up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helexa.errors import InsufficientMemory
from helexa.neuron.engine import DeviceBudget, LoadSpec, MemoryBudget
from helexa.neuron.engine import load as load_model
from helexa.neuron.engine.gguf import (
    GGUFModel,
    NotGGUF,
    UnsupportedGGUF,
    inspect,
    is_gguf_path,
    parse_header,
)
from helexa.testing.neuron_proc import TINY_MODEL_ID
from helexa.testing.smollm2 import GGUF_BYTES
from tests.neuron.conftest import StartNeuron

SMOLLM2_PARAMETERS = 134_515_008  # what transformers counts after loading it


def write_gguf(path: Path, arch: str, rows: int = 8) -> Path:
    """A small, valid GGUF file with one float32 tensor."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch=arch)
    writer.add_file_type(0)
    writer.add_tensor("token_embd.weight", np.zeros((rows, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def truncated_copy(source: Path, path: Path, keep: int) -> Path:
    with source.open("rb") as src:
        path.write_bytes(src.read(keep))
    return path


def test_the_header_gives_architecture_quantization_and_parameters(smollm2_gguf: Path) -> None:
    model = inspect("smollm2", smollm2_gguf)

    assert model == GGUFModel(smollm2_gguf, "llama", "Q4_1", SMOLLM2_PARAMETERS)
    assert model.pretrained_kwargs == {"gguf_file": smollm2_gguf.name}
    assert model.directory == smollm2_gguf.parent


def test_the_size_estimate_is_dequantized_not_the_file(smollm2_gguf: Path) -> None:
    model = inspect("smollm2", smollm2_gguf)

    assert model.dequantized_bytes("float32") == SMOLLM2_PARAMETERS * 4
    assert model.dequantized_bytes("torch.bfloat16") == SMOLLM2_PARAMETERS * 2
    assert model.dequantized_bytes("float32") > 5 * GGUF_BYTES


def test_a_budget_the_file_fits_but_the_dequantized_weights_do_not_is_refused(
    smollm2_gguf: Path,
) -> None:
    # ~113 MB would do for the file; float32 weights need ~616 MB with the overhead.
    tight = MemoryBudget((DeviceBudget(0, "cpu", 300),))

    with pytest.raises(InsufficientMemory) as error:
        load_model(LoadSpec("smollm2", path=smollm2_gguf, dtype="float32"), tight)

    assert error.value.status == 507
    assert "needs ~616 MB" in error.value.message


def test_is_gguf_path_goes_by_the_suffix(tmp_path: Path) -> None:
    assert is_gguf_path(tmp_path / "m.gguf") and is_gguf_path(tmp_path / "M.GGUF")
    assert not is_gguf_path(tmp_path / "model") and not is_gguf_path(None)


def test_text_is_not_a_gguf(tmp_path: Path) -> None:
    with pytest.raises(NotGGUF) as error:
        parse_header(b"# a README\n", "notes.gguf")
    assert error.value.status == 400 and error.value.param == "path"
    assert "notes.gguf is not a GGUF file (starts with b'# a '" in error.value.message


def test_an_architecture_transformers_cannot_read_is_422(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "bert.gguf", "bert")

    with pytest.raises(UnsupportedGGUF) as error:
        inspect("b", path)

    assert error.value.status == 422
    assert "architecture 'bert' cannot be loaded from GGUF by transformers" in error.value.message
    assert "llama" in error.value.message  # the list of what it does read


@pytest.mark.parametrize(
    ("keep", "reason"),
    [(3000, "its header runs past the end (3000 bytes)"), (50_000_000, "its tensors need")],
    ids=["in-the-header", "in-the-tensors"],
)
def test_a_truncated_file_is_422(
    smollm2_gguf: Path, tmp_path: Path, keep: int, reason: str
) -> None:
    path = truncated_copy(smollm2_gguf, tmp_path / "cut.gguf", keep)

    with pytest.raises(UnsupportedGGUF) as error:
        inspect("cut", path)

    assert error.value.status == 422
    assert f"{path} is truncated: {reason}" in error.value.message


def test_a_small_valid_file_of_a_readable_architecture_passes(tmp_path: Path) -> None:
    model = inspect("q", write_gguf(tmp_path / "q.gguf", "qwen2", rows=16))
    assert (model.architecture, model.quantization, model.parameter_count) == (
        "qwen2",
        "F32",
        64,
    )


async def test_bad_files_are_clear_errors_and_the_neuron_keeps_serving(
    start_neuron: StartNeuron, tmp_path: Path, smollm2_gguf: Path, tiny_model_dir: Path
) -> None:
    live = await start_neuron()
    text = tmp_path / "readme.gguf"
    text.write_text("not weights")
    cases = {
        "text": (text, 400, "not_gguf"),
        "bert": (write_gguf(tmp_path / "bert.gguf", "bert"), 422, "unsupported_gguf"),
        "cut": (
            truncated_copy(smollm2_gguf, tmp_path / "cut.gguf", 50_000_000),
            422,
            "unsupported_gguf",
        ),
        "absent": (tmp_path / "absent.gguf", 404, "model_not_found"),
    }
    async with live.http() as client:
        for name, (path, status, code) in cases.items():
            reply = await client.post("/models/load", json={"model": name, "path": str(path)})
            assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), name
            assert str(path) in reply.json()["error"]["message"]
        assert (await client.get("/health")).status_code == 200
        states = {m["id"]: m["state"] for m in (await client.get("/models")).json()["models"]}
    assert states == dict.fromkeys(cases, "failed")
    loaded = await live.load(TINY_MODEL_ID, tiny_model_dir)
    assert (loaded["state"], loaded["format"]) == ("loaded", "safetensors")
    assert "quantization" not in loaded  # not quantized: left out of the wire


async def test_discovery_says_gguf_can_be_loaded(start_neuron: StartNeuron) -> None:
    live = await start_neuron()
    async with live.http() as client:
        discovery = (await client.get("/discovery")).json()
    assert discovery["formats"] == ["safetensors", "gguf"]


async def test_tokenize_counts_from_a_gguf_without_loading_it(
    start_neuron: StartNeuron, smollm2_gguf: Path
) -> None:
    live = await start_neuron()
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    async with live.http() as client:
        reply = await client.post(
            "/v1/tokenize",
            json={"model": "smollm2", "path": str(smollm2_gguf), "messages": question},
            timeout=300,
        )
        models = (await client.get("/models")).json()["models"]

    assert reply.status_code == 200, reply.text
    assert reply.json() == {"count": 42}  # the template's default system prompt included
    assert models == []  # the tokenizer alone, rebuilt from the file's header
