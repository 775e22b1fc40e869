"""Command lines of the server engines (pure)."""

from __future__ import annotations

import pytest

from helexa.errors import BadRequest
from helexa.neuron.engines.launch import Launch, check_template, llama_server_argv, template_argv

LAUNCH = Launch(model="m/x", path="/models/a b.gguf", port=4321, parallel=8, context_length=2048)


def test_template_words_are_filled_and_a_path_with_spaces_stays_one_argument() -> None:
    argv = template_argv("vllm serve {path} --port {port} --served-model-name {model}", LAUNCH)
    assert argv[:3] == ["vllm", "serve", "/models/a b.gguf"]
    assert argv[3:] == ["--port", "4321", "--served-model-name", "m/x"]


def test_every_placeholder_has_a_value() -> None:
    template = "s {model} {path} {host} {port} {parallel} {context_length} {device}"
    gpu = Launch(model="m", path="/p", port=1, parallel=2, context_length=None, devices=(1, 3))
    assert template_argv(template, gpu) == ["s", "m", "/p", "127.0.0.1", "1", "2", "", "1,3"]
    assert gpu.env() == {"CUDA_VISIBLE_DEVICES": "1,3"}
    assert LAUNCH.env() == {"CUDA_VISIBLE_DEVICES": ""}  # CPU placement: no GPU visible


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("serve {path} --port {prot}", "unknown placeholder {prot}"),
        ("serve {path}", "must pass {port}"),
        ("serve 'unclosed --port {port}", "does not parse"),
        ("   ", "empty"),
        ("serve {port} {", "word"),
    ],
)
def test_bad_templates_say_what_is_wrong(template: str, says: str) -> None:
    with pytest.raises(BadRequest) as info:
        check_template(template)
    assert says in info.value.message
    assert info.value.param == "command"


def test_llama_server_binds_loopback_with_one_slot_per_admitted_request() -> None:
    argv = llama_server_argv("/bin/llama-server", LAUNCH, threads=2)
    assert argv[0] == "/bin/llama-server"

    def value(flag: str) -> str:
        return argv[argv.index(flag) + 1]

    assert value("--host") == "127.0.0.1"
    assert value("--port") == "4321"
    assert value("--parallel") == "8"
    assert value("--model") == "/models/a b.gguf"
    assert value("--ctx-size") == str(2048 * 8)  # the KV cache is shared by the slots
    assert value("--threads") == "2"
    assert value("--n-gpu-layers") == "0"
    assert "--jinja" in argv and "--no-repack" in argv


def test_llama_server_without_a_context_cap_keeps_its_default() -> None:
    launch = Launch(model="m", path="/p.gguf", port=1, parallel=1, context_length=None)
    assert "--ctx-size" not in llama_server_argv("llama-server", launch)
    assert "--threads" not in llama_server_argv("llama-server", launch)
