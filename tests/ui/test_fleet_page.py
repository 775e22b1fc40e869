"""The /ui page in headless Chromium against a live fleet (box up, gone down).

Checks what an operator looks at: both neurons with their state and device
bars, the pinned model loaded, a model loaded through the API appearing
without a reload, rates and decisions, no console errors, and a phone-width
layout without sideways scrolling. The screenshot lands in
`$HELEXA_ARTEFACTS` (default .cache/artefacts/) as ui-fleet.png.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from helexa.deploy.hostplan import HostAction
from helexa.reconcile.daemon import ReconcileDaemon
from helexa.reconcile.plan import Plan
from helexa.testing.neuron_proc import free_port
from tests.cli.status_fleet import PINNED_MODEL, SPARE_MODEL, two_neuron_fleet
from tests.gateway.harness import run_gateway, write_configs
from tests.ui.chromium import open_page

KEY = "ui-test-key"
REPO = Path(__file__).resolve().parents[2]
PHONE_WIDTH = 390


def artefacts() -> Path:
    directory = Path(os.environ.get("HELEXA_ARTEFACTS", REPO / ".cache" / "artefacts"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def row(model: str, state: str) -> str:
    return f"!!document.querySelector('tr[data-model={json.dumps(model)}][data-state={state}]')"


async def test_fleet_page_shows_the_fleet_and_follows_a_load(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    async with (
        two_neuron_fleet(tmp_path, tiny_model_dir, api_keys=[KEY]) as running,
        open_page(tmp_path / "chromium") as page,
    ):
        await page.navigate(f"{running.url}/ui?key={KEY}")  # signs in, lands on /ui
        assert await page.evaluate("location.pathname + location.search") == "/ui"
        await page.wait_for("Number(document.body.dataset.polls || 0) >= 1")
        await page.wait_for("!!document.querySelector('[data-neuron=box][data-state=up]')")
        await page.wait_for("!!document.querySelector('[data-neuron=gone][data-state=down]')")
        assert await page.evaluate("document.querySelectorAll('[data-neuron=box] .bar').length")
        assert await page.evaluate(row(PINNED_MODEL, "loaded"))
        assert await page.evaluate(row(SPARE_MODEL, "absent"))
        assert "NeuronsReachable" in await page.evaluate("document.body.innerText")

        async with running.openai(api_key=KEY) as client:  # cold-loads the spare model
            await client.chat.completions.create(
                model=SPARE_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
        await page.wait_for(row(SPARE_MODEL, "loaded"))
        await page.wait_for("!!document.querySelector('[data-decision=load]')")
        engine = f"tr[data-model={json.dumps(SPARE_MODEL)}] td:nth-child(2)"
        assert await page.evaluate(f"document.querySelector('{engine}').innerText") == (
            "transformers"
        )
        rate = f"tr[data-model={json.dumps(SPARE_MODEL)}] td:nth-child(5)"
        await page.wait_for(f"!['–', '0.00'].includes(document.querySelector('{rate}').innerText)")
        await page.screenshot(artefacts() / "ui-fleet.png")

        await page.send(
                "Emulation.setDeviceMetricsOverride",
                width=PHONE_WIDTH, height=800, deviceScaleFactor=2, mobile=True,
            )  # fmt: skip
        await page.wait_for(f"document.documentElement.clientWidth === {PHONE_WIDTH}")
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= PHONE_WIDTH, "the page scrolls sideways on a phone"
        await page.screenshot(artefacts() / "ui-fleet-phone.png")
        assert page.errors == []
    assert (artefacts() / "ui-fleet.png").read_bytes().startswith(b"\x89PNG")


async def test_fleet_page_refuses_a_browser_without_the_key(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    async with (
        two_neuron_fleet(tmp_path, tiny_model_dir, api_keys=[KEY]) as running,
        open_page(tmp_path / "chromium") as page,
    ):
        await page.navigate(f"{running.url}/ui")
        text = await page.evaluate("document.body.innerText")
        assert "API key" in text and "box" not in text
        assert await page.evaluate("fetch('/admin/fleet').then(r => r.status)") == 401


async def test_fleet_page_names_the_target_of_a_pending_host_action(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    config = write_configs(
        tmp_path,
        f"""
        [gateway]
        api_keys = ["{KEY}"]
        [[neurons]]
        name = "loopy"
        endpoint = "http://127.0.0.1:{free_port()}"
        ssh = "root@127.0.0.1"
        """,
        f"""
        [[models]]
        id = "{SPARE_MODEL}"
        path = "{tiny_model_dir}"
        """,
    )
    restart = HostAction("h1", "restart", "loopy", "helexa-neuron.service", "defrag: idle")
    async with (
        run_gateway(config) as running,
        open_page(tmp_path / "chromium") as page,
    ):
        gw = running.gateway
        # A daemon that never runs a round: its last plan left the restart pending.
        daemon = ReconcileDaemon(
            config.fleet_path, config.models_path, gw.fleet, gw.poller, gw.client, config=config
        )
        daemon.last_plan = Plan("g", "o", host_actions=(restart,), withheld=(restart,))
        gw.reconcile = daemon
        await page.navigate(f"{running.url}/ui?key={KEY}")
        await page.wait_for("document.querySelectorAll('#plan li').length === 1")
        shown = await page.evaluate("document.querySelector('#plan li').innerText")
        assert "restart helexa-neuron.service on loopy" in shown
        assert page.errors == []
