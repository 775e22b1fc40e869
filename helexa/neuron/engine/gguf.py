"""GGUF files: read the header before loading, so the budget check and errors come first.

A models.toml `path` naming a `.gguf` file is loaded through transformers' GGUF
support, which dequantizes every tensor to the load's dtype. So the memory a
load needs is parameter count x dtype bytes, not the (quantized) file size; the
header says the parameter count without touching the tensor data.

`parse_header` is pure over a buffer (the file is mmapped, nothing is copied);
`inspect` is the I/O shell. Errors are the caller's: not a GGUF -> 400, an
architecture or tensor type transformers cannot dequantize, or a truncated
file -> 422, each saying why.
"""

from __future__ import annotations

import importlib.util
import mmap
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from helexa.errors import BadRequest, LoadFailed, ModelNotFound

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
SUFFIX = ".gguf"
# transformers' GGUF names for some llama.cpp architectures (modeling_gguf_pytorch_utils).
_ARCH_RENAMES = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss"}
# In transformers' GGUF list but not causal language models this engine can serve.
_NOT_CAUSAL_LM = {"general", "tokenizer", "t5", "umt5"}
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

# GGUF metadata value types: fixed-size scalars by struct format; 8 = string, 9 = array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"}
_SCALARS |= {10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class NotGGUF(BadRequest):
    code = "not_gguf"


class UnsupportedGGUF(BadRequest):
    status = 422
    code = "unsupported_gguf"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # from the start of the data section

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict[str, Any]  # scalars and strings; arrays are skipped
    tensors: tuple[TensorInfo, ...]
    data_start: int  # byte offset of the tensor data section

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def parameter_count(self) -> int:
        return sum(t.elements for t in self.tensors)


@dataclass(frozen=True)
class GGUFModel:
    """A checked GGUF file: what the loader passes to from_pretrained, and /models shows."""

    path: Path
    architecture: str
    quantization: str  # e.g. "Q4_1" or "F32": the file type, else the commonest tensor type
    parameter_count: int

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def pretrained_kwargs(self) -> dict[str, Any]:
        return {"gguf_file": self.path.name}

    def dequantized_bytes(self, dtype: str) -> int:
        """What the weights take once dequantized to `dtype` (a torch dtype name)."""
        return self.parameter_count * _DTYPE_BYTES.get(dtype.removeprefix("torch."), 4)


def is_gguf_path(path: Path | None) -> TypeGuard[Path]:
    return path is not None and path.suffix.lower() == SUFFIX


def inspect(model_id: str, path: Path) -> GGUFModel:
    """Read and check `path`'s header; raises ModelNotFound, NotGGUF or UnsupportedGGUF."""
    require_gguf(model_id)
    if not path.is_file():
        raise ModelNotFound(f"{model_id}: no GGUF file at {path}", param="path")
    size = path.stat().st_size
    if size < 4:
        raise NotGGUF(f"{model_id}: {path} is not a GGUF file ({size} bytes)", param="path")
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
        header = parse_header(view, f"{model_id}: {path}")
    check(header, size, f"{model_id}: {path}")
    return describe(header, path)


def parse_header(buffer: Any, where: str = "file") -> GGUFHeader:
    """The metadata and tensor table of a GGUF file held in `buffer` (bytes or mmap)."""
    if bytes(buffer[:4]) != MAGIC:
        raise NotGGUF(
            f"{where} is not a GGUF file (starts with {bytes(buffer[:4])!r})", param="path"
        )
    reader = _Reader(buffer, where)
    reader.pos = 4
    version = reader.scalar("<I")
    if version not in (2, 3):
        raise UnsupportedGGUF(f"{where}: GGUF version {version} (2 and 3 are read)", param="path")
    tensor_count, kv_count = reader.scalar("<Q"), reader.scalar("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = reader.string()
        value = reader.value(reader.scalar("<I"))
        if value is not None:
            metadata[key] = value
    tensors = tuple(reader.tensor_info() for _ in range(tensor_count))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
    data_start = -(-reader.pos // alignment) * alignment
    return GGUFHeader(version, metadata, tensors, data_start)


def check(header: GGUFHeader, file_size: int, where: str = "file") -> None:
    """Refuse what transformers cannot dequantize, and files shorter than their tensors."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    architecture = _ARCH_RENAMES.get(header.architecture, header.architecture)
    supported = _supported_architectures()
    if architecture not in supported:
        raise UnsupportedGGUF(
            f"{where}: architecture {header.architecture!r} cannot be loaded from GGUF by "
            f"transformers (it reads: {', '.join(sorted(supported))})",
            param="path",
        )
    end = header.data_start
    for tensor in header.tensors:
        if tensor.ggml_type not in GGML_QUANT_SIZES:
            raise UnsupportedGGUF(
                f"{where}: tensor {tensor.name!r} has GGML type {tensor.ggml_type}, "
                "which cannot be dequantized",
                param="path",
            )
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(tensor.ggml_type)]
        end = max(end, header.data_start + tensor.offset + tensor.elements // block * type_size)
    if end > file_size:
        raise UnsupportedGGUF(
            f"{where} is truncated: its tensors need {end} bytes, the file has {file_size}",
            param="path",
        )


def describe(header: GGUFHeader, path: Path) -> GGUFModel:
    return GGUFModel(path, header.architecture, quantization(header), header.parameter_count)


def quantization(header: GGUFHeader) -> str:
    """The file type's name (general.file_type), else the type holding most elements."""
    from gguf.constants import GGMLQuantizationType, LlamaFileType

    file_type = header.metadata.get("general.file_type")
    if isinstance(file_type, int) and file_type in LlamaFileType._value2member_map_:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    by_elements: Counter[int] = Counter()
    for tensor in header.tensors:
        by_elements[tensor.ggml_type] += tensor.elements
    if not by_elements:
        return "unknown"
    commonest = by_elements.most_common(1)[0][0]
    if commonest in GGMLQuantizationType._value2member_map_:
        return GGMLQuantizationType(commonest).name
    return f"type {commonest}"


def _supported_architectures() -> set[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return set(GGUF_SUPPORTED_ARCHITECTURES) - _NOT_CAUSAL_LM


def require_gguf(model_id: str) -> None:
    """The `gguf` package reads the tensors; without it no GGUF loads (500, saying so)."""
    if importlib.util.find_spec("gguf") is None:
        raise LoadFailed(
            f"{model_id}: loading GGUF files needs the `gguf` package (helexa[neuron])"
        )


class _Reader:
    """Bounds-checked little-endian reads; running off the end means a truncated file."""

    def __init__(self, buffer: Any, where: str) -> None:
        self.buffer = buffer
        self.size = len(buffer)
        self.where = where
        self.pos = 0

    def _need(self, count: int) -> None:
        if count < 0 or self.pos + count > self.size:
            raise UnsupportedGGUF(
                f"{self.where} is truncated: its header runs past the end ({self.size} bytes)",
                param="path",
            )

    def scalar(self, fmt: str) -> Any:
        width = struct.calcsize(fmt)
        self._need(width)
        (value,) = struct.unpack_from(fmt, self.buffer, self.pos)
        self.pos += width
        return value

    def string(self) -> str:
        length = self.scalar("<Q")
        self._need(length)
        raw = bytes(self.buffer[self.pos : self.pos + length])
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        """A metadata value; arrays are skipped (None): the vocabulary is not needed here."""
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.scalar("<I"), self.scalar("<Q")
            if item_kind in _SCALARS:
                width = struct.calcsize(_SCALARS[item_kind]) * count
                self._need(width)
                self.pos += width
            else:
                for _ in range(count):
                    self.value(item_kind)
            return None
        raise UnsupportedGGUF(f"{self.where}: unknown metadata value type {kind}", param="path")

    def tensor_info(self) -> TensorInfo:
        name = self.string()
        dims = self.scalar("<I")
        shape = tuple(self.scalar("<Q") for _ in range(dims))
        return TensorInfo(name, shape, self.scalar("<I"), self.scalar("<Q"))
