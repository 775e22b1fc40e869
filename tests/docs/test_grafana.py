"""docs/grafana/helexa.json and docs/prometheus.yml against live metrics endpoints.

Every metric the dashboard queries must exist on a live gateway metrics
endpoint (cortex_*) or a live neuron's /metrics (neuron_*): a renamed metric
fails here instead of leaving an empty panel. The scrape config must pass
`promtool check config`.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from helexa.gateway.metrics import metrics_app
from helexa.testing.neuron_proc import InProcessNeuron, serve_in_process
from tests.gateway.harness import neuron_config, run_gateway, write_configs
from tests.gateway.scripted_upstream import ScriptedUpstream

DOCS = Path(__file__).resolve().parents[2] / "docs"
DASHBOARD = DOCS / "grafana" / "helexa.json"
METRIC = re.compile(r"\b(?:cortex|neuron)_[a-z_]+\b")
# Series suffix -> the family types that expose it.
SUFFIXES = {
    "_total": ("counter",),
    "_bucket": ("histogram",),
    "_count": ("histogram",),
    "_sum": ("histogram",),
}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    return {
        name
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        for name in METRIC.findall(target["expr"])
    }


def exposed(text: str) -> tuple[set[str], dict[str, str]]:
    """Sample names and family name -> type of one /metrics page."""
    samples: set[str] = set()
    families: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        samples.update(sample.name for sample in family.samples)
    return samples, families


def exists(name: str, samples: set[str], families: dict[str, str]) -> bool:
    """A sample name as queried, or a series of a declared family that has no samples yet."""
    if name in samples or families.get(name) in ("gauge", "unknown"):
        return True
    for suffix, types in SUFFIXES.items():
        if name.endswith(suffix) and families.get(name.removesuffix(suffix)) in types:
            return True
    return False


def test_dashboard_is_valid_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] == "helexa"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    names = queried_metrics(dashboard)
    assert any(n.startswith("cortex_") for n in names)
    assert any(n.startswith("neuron_") for n in names)


async def test_every_queried_metric_exists_on_live_endpoints(tmp_path: Path) -> None:
    upstream = await ScriptedUpstream(["vendor/big"]).start()
    try:
        gateway_text = await gateway_metrics_after_traffic(tmp_path, upstream)
    finally:
        await upstream.stop()
    async with InProcessNeuron.start(neuron_config("n")) as neuron, neuron.http() as http:
        neuron_text = (await http.get("/metrics")).text
    gateway_samples, gateway_families = exposed(gateway_text)
    neuron_samples, neuron_families = exposed(neuron_text)
    assert "cortex_requests_total" in gateway_samples  # the scrape saw the traffic
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    missing = [
        name
        for name in sorted(queried_metrics(dashboard))
        if not (
            exists(name, gateway_samples, gateway_families)
            if name.startswith("cortex_")
            else exists(name, neuron_samples, neuron_families)
        )
    ]
    assert missing == []


async def gateway_metrics_after_traffic(tmp_path: Path, upstream: ScriptedUpstream) -> str:
    """One streamed request through a real gateway, then its metrics page."""
    fleet = (
        f'[[neurons]]\nname = "big"\nkind = "openai"\n'
        f'endpoint = "{upstream.url}/v1"\nmodels = ["vendor/big"]\n'
    )
    async with run_gateway(write_configs(tmp_path, fleet, "")) as gw:
        async with gw.openai() as client:  # real traffic, so labelled series have samples
            stream = await client.chat.completions.create(
                model="vendor/big", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async for _ in stream:
                pass
        return await scrape_gateway(gw.gateway.metrics)


async def scrape_gateway(metrics: Any) -> str:
    """The gateway's metrics server (as `helexa serve` runs it) on an ephemeral port."""
    async with serve_in_process(metrics_app(metrics)) as base, httpx.AsyncClient() as client:
        return (await client.get(f"{base}/metrics")).text


def test_exists_rejects_unknown_names() -> None:
    samples, families = exposed("# TYPE a_total counter\na_total 1\n# TYPE h histogram\n")
    assert exists("a_total", samples, families) and exists("h_bucket", samples, families)
    assert not exists("h_total", samples, families) and not exists("nope", samples, families)


async def test_prometheus_scrape_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by scripts/system-deps.sh (make test)"
    token = tmp_path / "helexa-fleet.token"
    token.write_text("secret\n")
    text = (DOCS / "prometheus.yml").read_text(encoding="utf-8")
    assert "/etc/prometheus/helexa-fleet.token" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/helexa-fleet.token", str(token)))
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
