"""GPU placement without a GPU: ordinals by UUID, the split device map, CUDA problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from helexa.errors import InsufficientMemory, LoadFailed
from helexa.neuron.engine import placement
from helexa.neuron.hardware import DeviceBudget

UUID_A = "GPU-8f0b6a1e-0000-4000-8000-00000000000a"
UUID_B = "GPU-8f0b6a1e-0000-4000-8000-00000000000b"


def test_ordinals_are_found_by_uuid_not_by_nvml_index() -> None:
    chosen = (DeviceBudget(0, "cuda", 8000, UUID_A), DeviceBudget(1, "cuda", 8000, UUID_B))
    # torch numbers them the other way round and writes UUIDs without the GPU- prefix
    torch_order = [UUID_B.removeprefix("GPU-"), UUID_A.removeprefix("GPU-").upper()]

    assert placement.ordinals_by_uuid(chosen, torch_order) == [1, 0]


def test_a_gpu_torch_cannot_see_fails_the_load_saying_why() -> None:
    chosen = (DeviceBudget(0, "cuda", 8000, UUID_A),)

    with pytest.raises(LoadFailed, match="CUDA_VISIBLE_DEVICES"):
        placement.ordinals_by_uuid(chosen, [UUID_B])


def test_nvml_gpus_with_a_torch_that_has_no_cuda_fail_the_load_saying_why() -> None:
    assert torch.version.cuda is None and not torch.cuda.is_available()  # this CPU build

    with pytest.raises(LoadFailed, match="built without CUDA") as caught:
        placement.cuda_ordinals((DeviceBudget(0, "cuda", 8000, UUID_A),))
    assert "NVML shows 1 GPU" in caught.value.message
    assert placement.cuda_ordinals((DeviceBudget(0, "cpu", 8000),)) == []
    assert placement.torch_devices() == [] and placement.reclaimable_mb() == {}


def test_a_split_over_two_gpus_keeps_every_module_on_them(tiny_model_dir: Path) -> None:
    # The tiny model's weights are 4.1 MB in float32: 3 MB per GPU forces a split.
    split = placement.device_map(tiny_model_dir, torch.float32, [0, 1], [3, 3])

    assert set(split.values()) == {0, 1}


def test_gpus_too_small_are_refused_instead_of_offloading(tiny_model_dir: Path) -> None:
    # accelerate's own answer here puts the layers on "disk"
    with pytest.raises(InsufficientMemory, match="disk") as caught:
        placement.device_map(tiny_model_dir, torch.float32, [0, 1], [2, 2])
    assert caught.value.status == 507
    with pytest.raises(InsufficientMemory, match="cpu"):
        placement.check_on_gpus({"model.layers.0": 0, "model.layers.1": "cpu"}, [0])
    # however a GPU is spelled, it is the same GPU
    spellings = {"a": 0, "b": "1", "c": "cuda:1", "d": torch.device("cuda", 0)}
    placement.check_on_gpus(spellings, [0, 1])
    with pytest.raises(InsufficientMemory, match="cuda:2"):
        placement.check_on_gpus({"a": 0, "b": "cuda:2"}, [0, 1])


def test_a_device_map_load_runs_through_accelerate(tiny_model_dir: Path) -> None:
    # Every GPU load passes a device_map, which transformers refuses without accelerate;
    # the same split map, with the CPU standing in for both GPUs, must load and agree.
    from transformers import AutoModelForCausalLM

    split = placement.device_map(tiny_model_dir, torch.float32, [0, 1], [3, 3])
    on_cpu = {name: "cpu" for name in split}
    mapped: Any = AutoModelForCausalLM.from_pretrained(tiny_model_dir, device_map=on_cpu)
    plain: Any = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[5, 6, 7, 8]])

    with torch.inference_mode():
        assert torch.equal(mapped(ids).logits, plain(ids).logits)
