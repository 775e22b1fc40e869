"""`helexa serve` pieces: the open-gateway warning, the banner, socket binding.

The whole of `serve` runs as a subprocess in tests/test_make_run.py.
"""

from __future__ import annotations

from pathlib import Path

from helexa.gateway.core import Gateway
from helexa.serve.server import Running, banner, bind, open_warning
from helexa.testing.neuron_proc import free_port
from tests.gateway.harness import write_configs

MODELS = '[[models]]\nid = "m/one"\n'


def test_warns_only_when_open_off_loopback(tmp_path: Path) -> None:
    open_fleet = write_configs(tmp_path, '[gateway]\nlisten = "0.0.0.0:31313"\n', MODELS)
    warning = open_warning(open_fleet)
    assert warning is not None and "api_keys" in warning
    keyed = '[gateway]\nlisten = "0.0.0.0:31313"\napi_keys = ["k"]\n'
    assert open_warning(write_configs(tmp_path, keyed, MODELS)) is None
    assert open_warning(write_configs(tmp_path, "", MODELS)) is None  # loopback default


def test_banner_says_how_to_call_it(tmp_path: Path) -> None:
    config = write_configs(tmp_path, "", MODELS)
    text = banner(Running(Gateway(config), "http://127.0.0.1:31313", "http://127.0.0.1:31314"))
    assert "curl http://127.0.0.1:31313/v1/chat/completions" in text
    assert '"model": "m/one"' in text
    assert "export OPENAI_BASE_URL=http://127.0.0.1:31313/v1" in text
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:31313" in text


def test_bind_listens_on_the_address() -> None:
    port = free_port()
    sock = bind(f"127.0.0.1:{port}")
    try:
        assert sock.getsockname() == ("127.0.0.1", port)
    finally:
        sock.close()
