"""models.toml: accepted files, alias resolution, and every rule's located error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helexa.config.loader import load_toml, read_toml, validate
from helexa.config.models import FOREIGN_MODELS, KNOWN_NEURONS, ModelsConfig
from helexa.errors import ConfigError, ConfigErrors

WriteToml = Callable[[str, str], Path]
ErrorAt = Callable[[list[ConfigError], int, str], ConfigError]

# Every field docs/configuration.md describes, with its comments.
EVERY_FIELD_MODELS = """
[[models]]
id = "Qwen/Qwen3-8B"          # HF repo id, or any name when `path` is given
path = "/srv/models/qwen3-8b" # optional local directory (else HF cache / hub)
revision = "main"
dtype = "auto"                # auto | bfloat16 | float16 | float32
vram_mb = 18000               # estimate until a measured footprint exists
devices = 1                   # GPUs it needs on one host (device_map across them)
min_device_vram_mb = 16000
neurons = ["beast"]           # placement affinity; empty = anywhere
pin = true                    # keep `replicas` copies loaded; never evicted
replicas = 1
priority = 100                # residency class: may displace <= its own class
keep_alive = "30m"
context_length = 32768        # cap; default = the model's own max
aliases = ["helexa/medium"]
[models.sampling]             # defaults when a request does not say
temperature = 0.7

[aliases]                     # names clients hard-code; `*` matches any run of characters
"claude-*-haiku-*" = "Qwen/Qwen3-8B"
"claude-*" = "Qwen/Qwen3-8B"  # most specific pattern wins; exact names beat patterns
"""

RESOLVING = """
[[models]]
id = "big"
aliases = ["helexa/big"]

[[models]]
id = "small"
path = "weights/small"
keep_alive = 90
[models.sampling]
temperature = 0.2
max_tokens = 64

[aliases]
"gpt-4o" = "big"
"claude-*" = "big"
"claude-*-haiku-*" = "small"
"""


def test_a_file_with_every_field_is_accepted(write_toml: WriteToml) -> None:
    models = load_toml(write_toml("models.toml", EVERY_FIELD_MODELS), ModelsConfig)
    spec = models.get("Qwen/Qwen3-8B")
    assert spec is not None
    assert spec.pin and spec.replicas == 1 and spec.priority == 100
    assert spec.keep_alive == 1800.0 and spec.context_length == 32768
    assert spec.sampling.temperature == 0.7
    assert models.resolve("helexa/medium") is spec
    assert models.resolve("claude-3-5-haiku-20241022") is spec


def test_defaults(write_toml: WriteToml) -> None:
    spec = load_toml(write_toml("models.toml", '[[models]]\nid = "m"\n'), ModelsConfig).models[0]
    assert (spec.revision, spec.dtype, spec.devices, spec.replicas) == ("main", "auto", 1, 1)
    assert spec.pin is False and spec.keep_alive is None and spec.vram_mb is None
    assert spec.sampling.as_request() == {}


def test_resolution_order(write_toml: WriteToml) -> None:
    models = load_toml(write_toml("models.toml", RESOLVING), ModelsConfig)
    big, small = models.get("big"), models.get("small")
    assert models.resolve("big") is big  # an id
    assert models.resolve("helexa/big") is big  # a models[].aliases entry
    assert models.resolve("gpt-4o") is big  # an exact [aliases] key
    assert models.resolve("claude-3-5-haiku-2024") is small  # the most specific pattern
    assert models.resolve("claude-opus-4") is big
    assert models.resolve("llama") is None
    assert models.alias_target("claude-opus-4") == "big"
    assert len(models.all_aliases()) == 4


def test_path_resolves_against_the_models_file(write_toml: WriteToml) -> None:
    path = write_toml("models.toml", RESOLVING)
    spec = load_toml(path, ModelsConfig).get("small")
    assert spec is not None and spec.path == path.parent / "weights" / "small"


def test_load_request_carries_what_the_neuron_needs(write_toml: WriteToml) -> None:
    spec = load_toml(write_toml("models.toml", RESOLVING), ModelsConfig).get("small")
    assert spec is not None
    request = spec.load_request()
    assert request.model == "small" and request.path == str(spec.path)
    assert request.sampling == {"temperature": 0.2, "max_tokens": 64}
    assert request.prefix_cache_mb is None  # the neuron's own budget


def test_a_models_prefix_cache_budget_reaches_its_load(write_toml: WriteToml) -> None:
    path = write_toml("models.toml", '[[models]]\nid = "m"\nprefix_cache_mb = 0\n')
    spec = load_toml(path, ModelsConfig).get("m")
    assert spec is not None and spec.load_request().prefix_cache_mb == 0
    with pytest.raises(ConfigErrors, match="prefix_cache_mb"):
        load_toml(
            write_toml("models.toml", '[[models]]\nid = "m"\nprefix_cache_mb = -1\n'), ModelsConfig
        )


def test_alias_may_target_a_model_of_an_openai_neuron(write_toml: WriteToml) -> None:
    source = read_toml(write_toml("models.toml", '[aliases]\n"gpt-*" = "llama-70b"\n'))
    context = {KNOWN_NEURONS: {"big"}, FOREIGN_MODELS: {"llama-70b"}}
    models = validate(source, ModelsConfig, context=context)
    assert models.resolve("gpt-4o") is None  # not a models.toml spec ...
    assert models.alias_target("gpt-4o") == "llama-70b"  # ... but routable
    with pytest.raises(ConfigErrors, match="points at 'llama-70b'"):
        validate(source, ModelsConfig)


def test_affinity_is_checked_against_the_fleet(write_toml: WriteToml, error_at: ErrorAt) -> None:
    source = read_toml(write_toml("models.toml", '[[models]]\nid = "m"\nneurons = ["ghost"]\n'))
    with pytest.raises(ConfigErrors) as caught:
        validate(source, ModelsConfig, context={KNOWN_NEURONS: {"beast"}})
    assert "unknown neuron 'ghost'" in error_at(caught.value.errors, 3, "models[0].neurons").message


_M = '[[models]]\nid = "a"\n'

# (models.toml text, line, key, words the message must contain)
REJECTED = [
    pytest.param(
        _M + "[models.sampling]\ntemprature = 0.5\n",
        4,
        "models[0].sampling.temprature",
        ["did you mean 'temperature'"],
        id="unknown-sampling-key",
    ),
    pytest.param(
        _M + "pinned = true\n",
        3,
        "models[0].pinned",
        ["did you mean 'pin'"],
        id="unknown-model-key",
    ),
    pytest.param(
        _M + '\n[[models]]\nid = "b"\n\n[[models]]\nid = "a"\n',
        8,
        "models[2].id",
        ["duplicate model id 'a'", "models[0]"],
        id="duplicate-id",
    ),
    pytest.param(
        _M + '\n[[models]]\nid = "b"\naliases = ["a"]\n',
        6,
        "models[1].aliases",
        ["alias 'a' is also a model id"],
        id="model-alias-is-an-id",
    ),
    pytest.param(
        _M + 'aliases = ["x"]\n\n[[models]]\nid = "b"\naliases = ["x"]\n',
        7,
        "models[1].aliases",
        ["'x' is already used by 'a'"],
        id="alias-on-two-models",
    ),
    pytest.param(
        _M + '\n[[models]]\nid = "b"\n\n[aliases]\n"b" = "a"\n',
        8,
        "aliases.b",
        ["also a model id"],
        id="alias-table-key-is-an-id",
    ),
    pytest.param(
        _M + 'aliases = ["x"]\n\n[aliases]\n"x" = "a"\n',
        6,
        "aliases.x",
        ["also declared in a models[].aliases"],
        id="alias-declared-twice",
    ),
    pytest.param(
        _M + '\n[aliases]\n"claude-*" = "nothing"\n',
        5,
        'aliases."claude-*"',
        ["points at 'nothing'"],
        id="alias-points-at-nothing",
    ),
    pytest.param(
        _M + '\n[aliases]\n"*" = "a"\n', 5, 'aliases."*"', ["literal character"], id="bare-wildcard"
    ),
    pytest.param(_M + 'dtype = "int4"\n', 3, "models[0].dtype", ["'bfloat16'"], id="bad-dtype"),
    pytest.param(
        _M + "replicas = 0\n",
        3,
        "models[0].replicas",
        ["greater than or equal to 1"],
        id="zero-replicas",
    ),
    pytest.param(
        _M + 'replicas = "2"\n', 3, "models[0].replicas", ["valid integer"], id="string-replicas"
    ),
    pytest.param(_M + 'pin = "yes"\n', 3, "models[0].pin", ["valid boolean"], id="string-pin"),
    pytest.param(
        _M + 'keep_alive = "1 hour"\n',
        3,
        "models[0].keep_alive",
        ["invalid duration"],
        id="bad-keep-alive",
    ),
    pytest.param(_M + "path = 7\n", 3, "models[0].path", ["path string"], id="path-not-a-string"),
    pytest.param(
        _M + "[models.sampling]\ntop_p = 1.5\n",
        4,
        "models[0].sampling.top_p",
        ["less than or equal to 1"],
        id="top-p",
    ),
    pytest.param(
        '[[models]]\npath = "/m"\n', 1, "models[0].id", ["missing required key"], id="missing-id"
    ),
    pytest.param(
        '[aliases]\n"x" = 1\n', 2, "aliases.x", ["valid string"], id="alias-target-not-a-string"
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "words"), REJECTED)
def test_rejected(
    write_toml: WriteToml, error_at: ErrorAt, text: str, line: int, key: str, words: list[str]
) -> None:
    path = write_toml("models.toml", text)
    with pytest.raises(ConfigErrors) as caught:
        load_toml(path, ModelsConfig)
    error = error_at(caught.value.errors, line, key)
    assert error.file == path
    for word in words:
        assert word in error.message


ENGINES = """
[[models]]
id = "smol"
path = "smol.gguf"
engine = "llama.cpp"

[[models]]
id = "served"
engine = "command"
command = "vllm serve {path} --port {port} --served-model-name {model}"
"""


def test_engines_reach_the_load_request(write_toml: WriteToml) -> None:
    models = load_toml(write_toml("models.toml", ENGINES), ModelsConfig)
    smol, served = models.get("smol"), models.get("served")
    assert smol is not None and served is not None
    assert smol.load_request().engine == "llama.cpp" and smol.load_request().command is None
    assert served.load_request().command == served.command
    default = ModelsConfig.model_validate({"models": [{"id": "x"}]}).models[0]
    assert default.engine == "transformers" and default.load_request().engine is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (_M + 'engine = "command"\n', ["needs a `command` template"]),
        (_M + 'engine = "command"\ncommand = "srv {path}"\n', ["must pass {port}"]),
        (_M + 'engine = "command"\ncommand = "srv {port} {gpu}"\n', ["unknown placeholder {gpu}"]),
        (_M + 'command = "srv {port}"\n', ['only used with engine = "command"']),
        (_M + 'engine = "llama.cpp"\n', ["needs `path`"]),
        (_M + 'engine = "vllm"\n', ["'llama.cpp'"]),
    ],
)
def test_engine_mistakes_are_located(write_toml: WriteToml, text: str, words: list[str]) -> None:
    path = write_toml("models.toml", text)
    with pytest.raises(ConfigErrors) as caught:
        load_toml(path, ModelsConfig)
    [error] = caught.value.errors
    assert error.file == path and error.line is not None and error.key.startswith("models[0]")
    for word in words:
        assert word in error.message
