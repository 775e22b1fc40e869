"""LiteLLM's proxy as a contestant: its own venv, 1 worker, no database, no callbacks.

The venv (bench/.venv-litellm, gitignored) is created and `litellm[proxy]`
installed from PyPI only when missing. The quick profile skips LiteLLM (CI
must depend on neither PyPI nor its ~20 s start). Install and startup are
time-boxed; any failure comes back as a reason string for the
report instead of an exception, so the rest of the bench still runs.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from bench.procs import Contestant, spawn, stop, wait_http
from bench.upstream import MODEL
from helexa.testing.neuron_proc import free_port

VENV = Path(__file__).resolve().parent / ".venv-litellm"
LITELLM = VENV / "bin" / "litellm"
INSTALL_SECONDS = 600.0
START_SECONDS = 120.0
# No network calls of its own (model cost map, telemetry), no logging work per request.
QUIET_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "DISABLE_SCHEMA_UPDATE": "True",
    # Anthropic /v1/messages -> the upstream's chat completions (what helexa does), not the
    # Responses API a plain OpenAI-compatible stub (or vLLM, llama.cpp) may lack.
    "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "True",
}


def config_yaml(stub_url: str) -> str:
    """The proxy config: one model pointed at the stub as an OpenAI-compatible server."""
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {stub_url}/v1\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  callbacks: []\n"
        "  success_callback: []\n"
        "  failure_callback: []\n"
        "  turn_off_message_logging: true\n"
        "general_settings:\n"
        "  disable_spend_logs: true\n"
        # Loopback only, no database: there is no key to protect.
        "  dangerously_permit_weak_or_unset_master_key: true\n"
    )


async def ensure_installed() -> str | None:
    """None when the litellm CLI is ready, else why it is not."""
    if LITELLM.exists():
        return None
    try:
        await asyncio.wait_for(asyncio.to_thread(_install), INSTALL_SECONDS)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"install failed: {exc}"
    except TimeoutError:
        return f"install took longer than {INSTALL_SECONDS:.0f}s"
    return None if LITELLM.exists() else "install finished but bin/litellm is missing"


def _install() -> None:
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = str(VENV / "bin" / "pip")
    subprocess.run([pip, "install", "-q", "litellm[proxy]"], check=True)


async def start(work: Path, stub: Contestant, quick: bool) -> Contestant | str:
    """The running proxy, or the reason it did not run."""
    if quick:
        return "not run in the quick profile (`make bench` installs and runs it)"
    missing = await ensure_installed()
    if missing is not None:
        return missing
    config = work / "litellm.yaml"
    config.write_text(config_yaml(stub.base_url))
    port = free_port()
    args = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--num_workers", "1"]
    process = spawn(args, work / "litellm.log", env=QUIET_ENV)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/health/liveliness", process, within=START_SECONDS)
    except (RuntimeError, TimeoutError) as exc:
        stop(process)
        tail = (work / "litellm.log").read_text(errors="replace")[-400:].strip()
        return f"did not start: {exc}; log tail: `{tail.splitlines()[-1] if tail else ''}`"
    return Contestant("LiteLLM", base, process)
