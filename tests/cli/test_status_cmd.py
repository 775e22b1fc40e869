"""`helexa status` against a real gateway with two neurons (one down) and the tiny model.

The rendered views are compared with snapshots in tests/cli/snapshots/ after
the volatile values (ports, temp paths, timestamps, measured memory, the CPU's
name) are pinned in the JSON. To accept a deliberate change of the view:
HELEXA_UPDATE_SNAPSHOTS=1 pytest tests/cli/test_status_cmd.py, then review the diff.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import pty
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from helexa.cli import main, status_cmd, status_view
from helexa.testing.neuron_proc import eventually, free_port
from tests.cli.status_fleet import PINNED_MODEL, SPARE_MODEL, two_neuron_fleet
from tests.gateway.harness import run_gateway, write_configs
from tests.gateway.scripted_upstream import ScriptedUpstream

SNAPSHOTS = Path(__file__).parent / "snapshots"
NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
WIDE, NARROW = 120, 60


def normalize(value: Any, tmp: str) -> Any:
    """Pin what differs from run to run; the structure stays as the gateway sent it."""
    if isinstance(value, str):
        value = value.replace(tmp, "/tmp/fleet")
        value = re.sub(r"127\.0\.0\.1(:|', )\d+", r"127.0.0.1\g<1>PORT", value)
        return re.sub(r"\d+ MB", "N MB", value)
    if isinstance(value, list):
        return [normalize(v, tmp) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: normalize(v, tmp) for k, v in value.items()}
    pinned = {
        "name": "CPU" if "memory_total_mb" in out else out.get("name"),
        "memory_total_mb": 4096,
        "memory_free_mb": 3584,
        "memory_mb": 128,
        "at": NOW - 30,
        "loaded_at": NOW - 600,
        "last_used_at": NOW - 125,
    }
    for key, pinned_value in pinned.items():
        if key in out and out[key] is not None:
            out[key] = pinned_value
    return out


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("HELEXA_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no snapshot {path}: run with HELEXA_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"{name} changed; see HELEXA_UPDATE_SNAPSHOTS in the docstring"


async def test_status_snapshots_and_cli_output(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with two_neuron_fleet(tmp_path, tiny_model_dir) as running:
        async with running.openai() as client:  # a cold load through the API: a decision
            await client.chat.completions.create(
                model=SPARE_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
        box = running.gateway.fleet.neurons["box"]
        await eventually(lambda: box.models[SPARE_MODEL].in_flight == 0)  # polled after it ended
        fleet = await asyncio.to_thread(status_cmd.fetch_fleet, running.url)
        assert await asyncio.to_thread(main, ["status", "--gateway", running.url]) == 0
        table = capsys.readouterr().out
        assert await asyncio.to_thread(main, ["status", "--gateway", running.url, "--json"]) == 0
        as_json = json.loads(capsys.readouterr().out)

    pinned = normalize(fleet, str(tmp_path))
    wide = status_view.render(pinned, WIDE, NOW)
    narrow = status_view.render(pinned, NARROW, NOW)
    check_snapshot("status_wide.txt", wide)
    check_snapshot("status_narrow.txt", narrow)
    assert max(map(len, narrow.splitlines())) <= NARROW
    for view in (wide, narrow, table):
        assert "gone" in view and "down" in view and "box" in view and "up" in view
        assert PINNED_MODEL in view and SPARE_MODEL in view
        assert "NeuronsReachable" in view
    assert "gone is down: Cannot connect" in table
    assert [m["id"] for m in as_json["models"]] == [SPARE_MODEL, PINNED_MODEL]
    assert [d["kind"] for d in as_json["decisions"]][-1] == "load"


def test_narrow_view_drops_columns_and_fits() -> None:
    fleet = {
        "health": {
            "status": "ok",
            "neurons": {"healthy": 1, "total": 1},
            "warnings": ["WARNING: open to the network"],
        },
        "neurons": [
            {
                "name": "beast",
                "healthy": True,
                "devices": [
                    {
                        "index": 0,
                        "name": "RTX 4090",
                        "kind": "cuda",
                        "memory_total_mb": 24564,
                        "memory_free_mb": 2456,
                    },
                ],
                "models": [],
            }
        ],
        "models": [],
        "decisions": [],
        "reconcile": None,
    }
    wide = status_view.render(fleet, WIDE, NOW)
    narrow = status_view.render(fleet, 40, NOW)
    assert "RTX 4090" in wide and "RTX 4090" not in narrow
    assert "[" + "█" * 18 + "░░]" in wide  # 90 % full of a 20-cell bar
    assert "21.6 GB/24.0 GB" in wide
    assert "reconcile: not running" in narrow
    assert "WARNING: open to the network" in narrow


def test_a_loading_copy_shows_how_long_its_load_has_taken() -> None:
    fleet = {
        "neurons": [{"name": "beast", "healthy": True, "devices": [], "models": []}],
        "models": [
            {"id": "m/big", "locations": [{"neuron": "beast", "state": "loading"}]},
        ],
        "decisions": [
            {"kind": "load", "model": "m/big", "neuron": "beast", "reason": "r", "at": NOW - 75},
        ],
    }
    assert "loading 1m" in status_view.render(fleet, WIDE, NOW)


def test_a_loading_copy_shows_the_share_of_its_weights_read() -> None:
    loading = {"neuron": "beast", "state": "loading", "progress": 42}
    fleet = {
        "neurons": [{"name": "beast", "healthy": True, "devices": [], "models": []}],
        "models": [{"id": "m/big", "locations": [loading]}],
        "decisions": [
            {"kind": "load", "model": "m/big", "neuron": "beast", "reason": "r", "at": NOW - 75},
        ],
    }
    assert "loading 42% 1m" in status_view.render(fleet, WIDE, NOW)
    fleet["decisions"] = []  # decided before the gateway's memory began: percent alone
    assert "loading 42%" in status_view.render(fleet, WIDE, NOW)


def test_pending_host_actions_show_their_target() -> None:
    restart = {
        "id": "h1", "kind": "restart", "symbol": "↻", "neuron": "loopy",
        "target": "helexa-neuron.service", "reason": "defrag: 3 load/unload cycles",
    }  # fmt: skip
    load = {
        "id": "a1", "kind": "load", "symbol": "+", "neuron": "loopy", "model": "m/x",
        "reason": "pinned",
    }  # fmt: skip
    fleet = {
        "neurons": [],
        "models": [],
        "decisions": [],
        "reconcile": {"conditions": [], "pending": [restart, load]},
    }
    shown = status_view.render(fleet, WIDE, NOW)
    assert "helexa-neuron.service @ loopy" in shown and "m/x @ loopy" in shown
    assert "None @" not in shown


@pytest.mark.parametrize(
    ("seconds", "shown"), [(5, "5s"), (125, "2m"), (3 * 3600 + 300, "3h05m"), (90000, "1d01h")]
)
def test_duration(seconds: float, shown: str) -> None:
    assert status_view.duration(seconds) == shown


def test_unreachable_gateway_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--gateway", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_watch_frame_keeps_retrying_when_the_gateway_is_away() -> None:
    args = argparse.Namespace(
        gateway=f"http://127.0.0.1:{free_port()}", api_key=None, json=False, watch=2.0
    )
    console = Console(file=io.StringIO(), width=WIDE)
    frame = status_cmd._frame(args, console, None)
    console.print(frame)
    assert "(retrying)" in console.file.getvalue()  # type: ignore[attr-defined]


async def test_watch_redraws_in_place_until_ctrl_c(tmp_path: Path) -> None:
    """A real terminal (a pty): rich Live redraws with cursor moves, Ctrl-C exits 0."""
    upstream = await ScriptedUpstream(["vendor/big"]).start()
    fleet_toml = (
        f'[[neurons]]\nname = "big"\nkind = "openai"\n'
        f'endpoint = "{upstream.url}/v1"\nmodels = ["vendor/big"]\n'
    )
    terminal, child_side = pty.openpty()
    try:
        async with run_gateway(write_configs(tmp_path, fleet_toml, "")) as gw:
            watch = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "helexa", "status", "--watch", "0.1"),
                *("--gateway", gw.url),
                stdout=child_side,
                env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
            )
            os.close(child_side)
            seen = b""
            async with asyncio.timeout(30):
                while seen.count(b"helexa fleet") < 2:  # the first frame and a redraw
                    seen += await asyncio.to_thread(os.read, terminal, 65536)
            watch.send_signal(signal.SIGINT)
            await asyncio.wait_for(watch.wait(), 30)
    finally:
        os.close(terminal)
        await upstream.stop()
    assert watch.returncode == 0
    assert b"vendor/big" in seen
    assert b"\x1b[" in seen  # redrawn in place (cursor control), not appended


def test_watch_into_a_pipe_appends_frames() -> None:
    args = argparse.Namespace(
        gateway=f"http://127.0.0.1:{free_port()}", api_key=None, json=False, watch=0.01
    )

    class Interrupting(io.StringIO):
        """A pipe-like file that presses Ctrl-C once three frames were written."""

        def flush(self) -> None:
            if self.getvalue().count("(retrying)") >= 3:
                raise KeyboardInterrupt

    out = Interrupting()
    assert status_cmd.run(args, console=Console(file=out, width=WIDE)) == 0
    assert out.getvalue().count("(retrying)") == 3
