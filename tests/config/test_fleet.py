"""fleet.toml: accepted files, and every rule's error naming file, line and key."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from helexa.config.fleet import FleetConfig
from helexa.config.loader import load_toml
from helexa.errors import ConfigError, ConfigErrors

WriteToml = Callable[[str, str], Path]
ErrorAt = Callable[[list[ConfigError], int, str], ConfigError]

# Every section and neuron kind docs/configuration.md describes, with its comments.
EVERY_SECTION_FLEET = """
[gateway]
listen = "127.0.0.1:31313"
metrics_listen = "127.0.0.1:31314"
api_keys = []                 # Bearer / x-api-key; empty = open

[eviction]
strategy = "lru"              # lru | priority
keep_alive = "30m"            # idle unload; per-model override; "forever" disables
defrag_after_cycles = 50      # restart an idle neuron after N load/unload cycles; 0 = off

[reconcile]
watch = true                  # react to saves of fleet.toml / models.toml
interval = "30s"              # periodic full resync (level-triggered)
auto_apply = "models"         # off | models | all: what the daemon applies by itself

[[neurons]]
name = "beast"
endpoint = "http://beast.internal:13131"
ssh = "root@beast.internal"   # optional: lets plan/apply/bootstrap manage the host
install = "rpm"               # rpm | pip
token_file = "/etc/helexa/fleet.token"   # shared secret for neuron admin/inference

[[neurons]]
name = "local"
endpoint = "http://127.0.0.1:13131"
local = true                  # `helexa serve` starts and supervises this neuron itself

[[neurons]]
name = "vllm-big"
kind = "openai"               # foreign OpenAI-compatible server, routed but not managed
endpoint = "http://big.internal:8000/v1"
models = ["meta-llama/Llama-3.3-70B-Instruct"]
"""


def test_a_file_with_every_section_is_accepted(write_toml: WriteToml) -> None:
    fleet = load_toml(write_toml("fleet.toml", EVERY_SECTION_FLEET), FleetConfig)
    assert fleet.eviction.keep_alive == 1800.0
    assert fleet.reconcile.interval == 30.0
    assert [n.name for n in fleet.neurons] == ["beast", "local", "vllm-big"]
    beast, local, vllm = fleet.neurons
    assert beast.managed and beast.token_file == Path("/etc/helexa/fleet.token")
    assert local.local and not local.managed
    assert vllm.kind == "openai" and not vllm.managed
    assert fleet.foreign_models() == {"meta-llama/Llama-3.3-70B-Instruct": ["vllm-big"]}
    assert fleet.neuron("local") is local and fleet.neuron("nope") is None


def test_an_empty_file_means_every_default(write_toml: WriteToml) -> None:
    fleet = load_toml(write_toml("fleet.toml", ""), FleetConfig)
    assert fleet.gateway.listen == "127.0.0.1:31313"
    assert fleet.gateway.metrics_listen == "127.0.0.1:31314"
    assert fleet.eviction.strategy == "lru" and fleet.eviction.defrag_after_cycles == 50
    assert fleet.reconcile.auto_apply == "models" and fleet.reconcile.watch is True
    assert fleet.neurons == []


def test_routing_defaults_to_prefix_affinity(write_toml: WriteToml) -> None:
    default = load_toml(write_toml("fleet.toml", ""), FleetConfig).gateway
    assert (default.routing, default.affinity_slack) == ("prefix_affinity", 0.25)
    text = '[gateway]\nrouting = "least_busy"\naffinity_slack = 0.5\n'
    chosen = load_toml(write_toml("fleet.toml", text), FleetConfig).gateway
    assert (chosen.routing, chosen.affinity_slack) == ("least_busy", 0.5)


def test_forever_keep_alive_is_infinite(write_toml: WriteToml) -> None:
    path = write_toml("fleet.toml", '[eviction]\nkeep_alive = "forever"\n')
    assert math.isinf(load_toml(path, FleetConfig).eviction.keep_alive)


def test_token_file_resolves_against_the_fleet_file(write_toml: WriteToml) -> None:
    path = write_toml(
        "fleet.toml",
        """
        [[neurons]]
        name = "beast"
        endpoint = "http://beast.internal:13131"
        token_file = "secrets/fleet.token"
        """,
    )
    fleet = load_toml(path, FleetConfig)
    assert fleet.neurons[0].token_file == path.parent / "secrets" / "fleet.token"


@pytest.mark.parametrize(
    ("listen", "api_keys", "open_to_network"),
    [("0.0.0.0:31313", [], True), ("0.0.0.0:31313", ["k"], False), ("127.0.0.1:31313", [], False)],
)
def test_gateway_open_to_network(listen: str, api_keys: list[str], open_to_network: bool) -> None:
    fleet = FleetConfig.model_validate({"gateway": {"listen": listen, "api_keys": api_keys}})
    assert fleet.gateway.is_open_to_network is open_to_network


_NEURON = '[[neurons]]\nname = "a"\nendpoint = "http://10.0.0.1:13131"\n'

# (fleet.toml text, line, key, words the message must contain)
REJECTED = [
    pytest.param(
        """
        [gateway]
        listen = "127.0.0.1:31313"
        metrics_listen = "127.0.0.1:31314"

        [eviction]
        strategy = "lru"
        keep_alve = "30m"
        """,
        7,
        "eviction.keep_alve",
        ["unknown key 'keep_alve'", "did you mean 'keep_alive'"],
        id="unknown-key-line-7",
    ),
    pytest.param(
        '[gatway]\nlisten = "127.0.0.1:1"\n',
        1,
        "gatway",
        ["did you mean 'gateway'"],
        id="unknown-table",
    ),
    pytest.param(
        '[gateway]\nlisten = "127.0.0.1:1"\nflavour = "x"\n',
        3,
        "gateway.flavour",
        ["unknown key", "valid keys: listen, metrics_listen"],
        id="unknown-key-no-close-match",
    ),
    pytest.param(
        '[eviction]\ndefrag_after_cycles = "50"\n',
        2,
        "eviction.defrag_after_cycles",
        ["valid integer", "'50'"],
        id="string-for-int",
    ),
    pytest.param(
        '[reconcile]\nwatch = "yes"\n',
        2,
        "reconcile.watch",
        ["valid boolean"],
        id="string-for-bool",
    ),
    pytest.param(
        '[eviction]\nkeep_alive = "30 minutes"\n',
        2,
        "eviction.keep_alive",
        ["invalid duration"],
        id="bad-duration",
    ),
    pytest.param(
        '[reconcile]\ninterval = "soon"\n',
        2,
        "reconcile.interval",
        ["invalid duration"],
        id="bad-interval",
    ),
    pytest.param(
        '[eviction]\nstrategy = "fifo"\n',
        2,
        "eviction.strategy",
        ["'lru' or 'priority'"],
        id="bad-strategy",
    ),
    pytest.param(
        '[reconcile]\nauto_apply = "some"\n',
        2,
        "reconcile.auto_apply",
        ["'off'"],
        id="bad-auto-apply",
    ),
    pytest.param(
        '[gateway]\nlisten = "31313"\n', 2, "gateway.listen", ["host:port"], id="bad-listen"
    ),
    pytest.param(
        '[gateway]\nrouting = "round_robin"\n',
        2,
        "gateway.routing",
        ["'prefix_affinity' or 'least_busy'"],
        id="unknown-routing",
    ),
    pytest.param(
        "[gateway]\naffinity_slack = -0.5\n",
        2,
        "gateway.affinity_slack",
        ["greater than or equal to 0"],
        id="negative-affinity-slack",
    ),
    pytest.param(
        '[gateway]\napi_keys = "secret"\n',
        2,
        "gateway.api_keys",
        ["valid list"],
        id="api-keys-not-a-list",
    ),
    pytest.param(
        _NEURON + '\n[[neurons]]\nname = "a"\nendpoint = "http://10.0.0.2:13131"\n',
        6,
        "neurons[1].name",
        ["duplicate neuron name 'a'", "neurons[0]"],
        id="duplicate-neuron-name",
    ),
    pytest.param(
        '[[neurons]]\nname = "local"\nendpoint = "http://10.0.0.1:13131"\nlocal = true\n',
        3,
        "neurons[0].endpoint",
        ["local = true", "loopback"],
        id="local-not-loopback",
    ),
    pytest.param(
        '[[neurons]]\nname = "big"\nkind = "openai"\nendpoint = "http://big:8000/v1"\n',
        1,
        "neurons[0].models",
        ['kind = "openai"', "models"],
        id="openai-without-models",
    ),
    pytest.param(
        _NEURON + 'models = ["m"]\n',
        4,
        "neurons[0].models",
        ['only for kind = "openai"'],
        id="models-on-a-helexa-neuron",
    ),
    pytest.param(
        '[[neurons]]\nname = "big"\nkind = "openai"\nendpoint = "http://big:8000/v1"\n'
        'models = ["m"]\nssh = "root@big"\n',
        6,
        "neurons[0].ssh",
        ["not managed over SSH"],
        id="openai-with-ssh",
    ),
    pytest.param(
        '[[neurons]]\nendpoint = "http://10.0.0.1:13131"\n',
        1,
        "neurons[0].name",
        ["missing required key"],
        id="missing-name",
    ),
    pytest.param(
        _NEURON + 'install = "deb"\n', 4, "neurons[0].install", ["'rpm' or 'pip'"], id="bad-install"
    ),
    pytest.param(
        _NEURON
        + '\n[[neurons]]\nname = "b"\nendpoint = "http://10.0.0.2:13131"\ntokenfile = "t"\n',
        8,
        "neurons[1].tokenfile",
        ["did you mean 'token_file'"],
        id="unknown-key-in-second-neuron",
    ),
    pytest.param(
        '[[neurons]]\nname = "x"\nendpoint = "ftp://x"\n',
        3,
        "neurons[0].endpoint",
        ["http:// or https://"],
        id="bad-endpoint",
    ),
    pytest.param(
        '[[neurons]]\nname = "has space"\nendpoint = "http://x:1"\n',
        2,
        "neurons[0].name",
        ["pattern"],
        id="bad-neuron-name",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "words"), REJECTED)
def test_rejected(
    write_toml: WriteToml, error_at: ErrorAt, text: str, line: int, key: str, words: list[str]
) -> None:
    path = write_toml("fleet.toml", text)
    with pytest.raises(ConfigErrors) as caught:
        load_toml(path, FleetConfig)
    error = error_at(caught.value.errors, line, key)
    assert error.file == path
    for word in words:
        assert word in error.message
    assert str(error).startswith(f"{path}:{line}: {key}: ")
