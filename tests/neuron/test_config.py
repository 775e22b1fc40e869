"""neuron.toml: every key of docs/neuron.md, strictness, paths, durations."""

from __future__ import annotations

from pathlib import Path

import pytest

from helexa.errors import ConfigErrors
from helexa.neuron.config import NeuronConfig, load_neuron_config

EXAMPLE = """\
[neuron]
listen = "127.0.0.1:13131"
name = "beast"
token_file = "secrets/fleet.token"
cache_dir = "/var/lib/helexa/hf"
offline = true
max_in_flight = 4
max_queue = 16
queue_timeout = "30s"
drain_timeout = "2m"
keep_alive_interval = "500ms"
torch_threads = 2

[devices]
reserve_mb = 1024
max_memory_mb = 2048

[[preload]]
model = "Qwen/Qwen3-8B"

[[preload]]
model = "tiny"
path = "models/tiny"
dtype = "float32"
sampling = { temperature = 0.2 }
"""


def test_full_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "neuron.toml"
    path.write_text(EXAMPLE)
    config = load_neuron_config(path)
    assert config.neuron.listen == "127.0.0.1:13131"
    assert config.neuron.name == "beast"
    assert config.neuron.token_file == tmp_path / "secrets" / "fleet.token"
    assert config.neuron.cache_dir == Path("/var/lib/helexa/hf")
    assert config.neuron.offline is True
    assert config.neuron.queue_timeout == 30.0
    assert config.neuron.drain_timeout == 120.0
    assert config.neuron.keep_alive_interval == 0.5
    assert config.devices.max_memory_mb == 2048
    assert [p.model for p in config.preload] == ["Qwen/Qwen3-8B", "tiny"]
    assert config.preload[1].path == tmp_path / "models" / "tiny"
    assert config.preload[1].sampling == {"temperature": 0.2}


def test_defaults_match_design() -> None:
    config = load_neuron_config(None)
    assert config.neuron.listen == "0.0.0.0:13131"
    assert (config.neuron.max_in_flight, config.neuron.max_queue) == (4, 16)
    assert config.neuron.queue_timeout == 30.0
    assert (config.devices.reserve_mb, config.devices.max_memory_mb) == (1024, 0)
    assert config.preload == []
    assert (config.neuron.prefix_cache_mb, config.neuron.prefill_chunk_tokens) == (512, "auto")


@pytest.mark.parametrize(("value", "expected"), [('"auto"', "auto"), ("96", 96), ("0", 0)])
def test_prefill_chunk_tokens_is_auto_or_a_count(
    tmp_path: Path, value: str, expected: int | str
) -> None:
    path = tmp_path / "neuron.toml"
    path.write_text(f"[neuron]\nprefill_chunk_tokens = {value}\n")
    assert load_neuron_config(path).neuron.prefill_chunk_tokens == expected


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "neuron.toml"
    path.write_text('[neuron]\nname = "a"\nmax_inflight = 3\n')
    with pytest.raises(ConfigErrors) as info:
        load_neuron_config(path)
    message = str(info.value)
    assert f"{path}:3" in message
    assert "max_inflight" in message


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ('[neuron]\nqueue_timeout = "soon"\n', "queue_timeout"),
        ('[neuron]\nlisten = "nope"\n', "listen"),
        ("[neuron]\nmax_in_flight = 0\n", "max_in_flight"),
        ('[devices]\nmax_memory_mb = "2g"\n', "max_memory_mb"),
        ('[[preload]]\npath = "x"\n', "model"),
        ("[neuron]\nprefix_cache_mb = -1\n", "prefix_cache_mb"),
        ("[neuron]\nprefill_chunk_tokens = -1\n", "prefill_chunk_tokens"),
        ('[neuron]\nprefill_chunk_tokens = "fast"\n', "prefill_chunk_tokens"),
        ('[neuron]\nprefill_chunk_tokens = "512"\n', "prefill_chunk_tokens"),
    ],
)
def test_bad_values_are_located(tmp_path: Path, snippet: str, key: str) -> None:
    path = tmp_path / "neuron.toml"
    path.write_text(snippet)
    with pytest.raises(ConfigErrors) as info:
        load_neuron_config(path)
    assert key in str(info.value)
    assert str(path) in str(info.value)


def test_token_is_read_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("s3cret\n")
    config = NeuronConfig.model_validate({"neuron": {"token_file": str(tmp_path / "t")}})
    assert config.read_token() == "s3cret"
    assert NeuronConfig().read_token() is None


def test_an_empty_token_file_is_an_error_not_an_open_neuron(tmp_path: Path) -> None:
    (tmp_path / "t").write_text(" \n")
    config = NeuronConfig.model_validate({"neuron": {"token_file": str(tmp_path / "t")}})
    with pytest.raises(ValueError, match="is empty"):
        config.read_token()
