"""The /ui keys panel in headless Chromium: per-key requests and tokens, limits, admin badge."""

from __future__ import annotations

from pathlib import Path

from helexa.config.keys import hash_key
from tests.cli.status_fleet import PINNED_MODEL, two_neuron_fleet
from tests.ui.chromium import open_page
from tests.ui.test_fleet_page import PHONE_WIDTH, artefacts

KEY = "ui-test-key"


def cell(key: str, column: int) -> str:
    return f"document.querySelector('tr[data-key={key}] td:nth-child({column})').innerText"


async def test_keys_panel_shows_each_keys_usage(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "keys.toml").write_text(
        f'[[keys]]\nname = "alice"\nsha256 = "{hash_key("k-alice")}"\nrequests_per_minute = 100\n'
    )
    async with (
        two_neuron_fleet(tmp_path, tiny_model_dir, api_keys=[KEY]) as running,
        open_page(tmp_path / "chromium") as page,
    ):
        output = 0
        async with running.openai(api_key="k-alice") as client:
            for _ in range(3):
                done = await client.chat.completions.create(
                    model=PINNED_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3
                )
                assert done.usage is not None
                output += done.usage.completion_tokens
        await page.navigate(f"{running.url}/ui?key={KEY}")
        await page.wait_for("!!document.querySelector('tr[data-key=alice]')")
        assert await page.evaluate(cell("alice", 2)) == PINNED_MODEL
        assert await page.evaluate(cell("alice", 3)) == "3"
        assert await page.evaluate(cell("alice", 6)) == str(output)
        assert await page.evaluate(cell("alice", 8)) == "100 req/min"
        await page.screenshot(artefacts() / "ui-keys.png")
        await page.send(
                "Emulation.setDeviceMetricsOverride",
                width=PHONE_WIDTH, height=800, deviceScaleFactor=2, mobile=True,
            )  # fmt: skip
        await page.wait_for(f"document.documentElement.clientWidth === {PHONE_WIDTH}")
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
        assert page.errors == []
