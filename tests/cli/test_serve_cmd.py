"""`helexa serve` logging: one grep-friendly line per decision, JSON with --log-json."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from helexa.cli import build_parser
from helexa.cli.plan_cmd import host_access
from helexa.cli.serve_cmd import JsonFormatter, decision_fields
from helexa.fleet.decisions import log_decision
from helexa.fleet.state import FleetState


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The decisions logger writing through JsonFormatter into a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("helexa.fleet.decisions")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_decision_line_becomes_structured_json(json_log: io.StringIO) -> None:
    log_decision(FleetState(), "evict", "m/a", "beast", "make room for m/b (needs 9.0 GB)")
    entry = json.loads(json_log.getvalue())
    assert entry["level"] == "info" and entry["logger"] == "helexa.fleet.decisions"
    assert entry["msg"].startswith("decision=evict model=m/a neuron=beast")
    assert entry["decision"] == {
        "decision": "evict",
        "model": "m/a",
        "neuron": "beast",
        "reason": "make room for m/b (needs 9.0 GB)",
    }


def test_extras_and_plain_lines(json_log: io.StringIO) -> None:
    logging.getLogger("helexa.fleet.decisions").info("hello %s", "there", extra={"n": 3})
    entry = json.loads(json_log.getvalue())
    assert entry["msg"] == "hello there" and entry["n"] == 3 and "decision" not in entry


def test_decision_fields_only_for_decision_lines() -> None:
    assert decision_fields("neuron box is up") is None
    assert decision_fields('decision=load model=x neuron=- reason="a b"') == {
        "decision": "load",
        "model": "x",
        "neuron": "-",
        "reason": "a b",
    }


def test_serve_takes_the_ssh_flags_of_plan_for_the_daemons_host_actions(tmp_path: Path) -> None:
    parser = build_parser()
    assert host_access(parser.parse_args(["serve", "--skip-hosts"])) is None
    key = tmp_path / "id_ed25519"
    access = host_access(
        parser.parse_args(["serve", "--identity", str(key), "--config-dir", "/srv/helexa"])
    )
    assert access is not None and access.identity == key
    assert str(access.layout.config_dir) == "/srv/helexa"
