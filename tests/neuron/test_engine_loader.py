"""Loading the real tiny model: footprint, dtype, failures, and freeing on close."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel

from helexa.errors import InsufficientMemory, LoadFailed, ModelNotFound
from helexa.neuron.engine import (
    DeviceBudget,
    LoadSpec,
    MemoryBudget,
    configure_torch_threads,
    load,
    weights_bytes,
)
from helexa.neuron.engine import loader as loader_module
from helexa.neuron.engine.loader import resolve_dtype

ROOMY = MemoryBudget((DeviceBudget(0, "cpu", 16_000),))


def _live_models() -> int:
    gc.collect()
    return sum(issubclass(type(o), PreTrainedModel) for o in gc.get_objects())


def test_load_reports_measured_memory_and_model_facts(tiny_model_dir: Path) -> None:
    loaded = load(LoadSpec("tiny", path=tiny_model_dir), ROOMY)
    try:
        assert loaded.memory_mb > 0
        assert loaded.dtype == "float32"  # auto on CPU
        assert loaded.devices == [0]
        assert loaded.context_length == loaded.model.config.max_position_embeddings
        assert loaded.eos_token_ids  # from generation_config / tokenizer
        assert loaded.tokenizer("hello")["input_ids"]
        assert not loaded.model.training
    finally:
        loaded.close()


def test_context_length_caps_below_the_model_limit(tiny_model_dir: Path) -> None:
    loaded = load(LoadSpec("tiny", path=tiny_model_dir, context_length=100), ROOMY)
    try:
        assert loaded.context_length == 100
        assert loaded.max_positions == loaded.model.config.max_position_embeddings
    finally:
        loaded.close()


def test_explicit_dtype_is_honoured(tiny_model_dir: Path) -> None:
    loaded = load(LoadSpec("tiny", path=tiny_model_dir, dtype="bfloat16"), ROOMY)
    try:
        assert loaded.dtype == "bfloat16"
        assert loaded.model.dtype == torch.bfloat16
    finally:
        loaded.close()


def test_auto_dtype_is_float32_on_cpu() -> None:
    assert resolve_dtype("auto", ROOMY.devices) == torch.float32
    assert resolve_dtype("float16", ROOMY.devices) == torch.float16


def test_close_stops_the_thread_and_frees_the_model(tiny_model_dir: Path) -> None:
    loaded = load(LoadSpec("tiny", path=tiny_model_dir), ROOMY)
    model_ref = weakref.ref(loaded.model)

    loaded.close()

    gc.collect()
    assert model_ref() is None
    assert not loaded._worker.alive


def test_missing_path_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound):
        load(LoadSpec("nope", path=tmp_path / "absent"), ROOMY)


def test_hub_id_missing_from_an_offline_cache_is_model_not_found(tmp_path: Path) -> None:
    spec = LoadSpec("helexa/not-a-real-model", cache_dir=tmp_path, offline=True)

    with pytest.raises(ModelNotFound):
        load(spec, ROOMY)


def test_weights_larger_than_the_budget_fail_before_allocating(tiny_model_dir: Path) -> None:
    needed_mb = weights_bytes(tiny_model_dir) * 1.2 / (1024 * 1024)
    tight = MemoryBudget((DeviceBudget(0, "cpu", int(needed_mb) - 1),))
    models_before = _live_models()

    with pytest.raises(InsufficientMemory) as error:
        load(LoadSpec("tiny", path=tiny_model_dir), tight)

    assert error.value.status == 507
    assert _live_models() == models_before


def test_weights_size_prefers_the_safetensors_index(tmp_path: Path) -> None:
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"x" * 10)
    (tmp_path / "model.safetensors.index.json").write_text('{"metadata": {"total_size": 1234}}')
    assert weights_bytes(tmp_path) == 1234
    (tmp_path / "model.safetensors.index.json").unlink()
    assert weights_bytes(tmp_path) == 10


def test_corrupt_weights_fail_as_load_failed_and_free_everything(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    models_before = _live_models()

    with pytest.raises(LoadFailed):
        load(LoadSpec("broken", path=broken), ROOMY)

    assert _live_models() == models_before


def test_torch_threads_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    original = torch.get_num_threads()
    try:
        monkeypatch.setenv("HELEXA_TORCH_THREADS", "1")
        configure_torch_threads()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(original)


def test_a_failed_load_frees_the_model_while_its_error_is_still_held(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[weakref.ref[object]] = []

    def measure_then_fail(model: object, *args: object) -> int:
        seen.append(weakref.ref(model))
        raise RuntimeError("measuring failed")

    monkeypatch.setattr(loader_module, "_footprint_mb", measure_then_fail)

    with pytest.raises(LoadFailed, match="measuring failed") as caught:
        load(LoadSpec("tiny", path=tiny_model_dir), ROOMY)

    gc.collect()
    assert caught.value.status == 500  # the error (and its traceback) still held here...
    assert seen and seen[0]() is None  # ...but not the half-loaded model


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB"),
        # transformers' weight conversion re-raises the allocation failure as its own error
        RuntimeError("Error while converting weights: CUDA error: out of memory"),
    ],
)
def test_out_of_memory_while_loading_is_insufficient_memory(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    from transformers import AutoModelForCausalLM

    def allocation_fails(*args: object, **kwargs: object) -> None:
        try:
            raise error
        except Exception as exc:
            raise ValueError("loading the checkpoint failed") from exc

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", allocation_fails)

    with pytest.raises(InsufficientMemory) as caught:
        load(LoadSpec("tiny", path=tiny_model_dir), ROOMY)

    assert caught.value.status == 507
    assert "out of memory" in caught.value.message
