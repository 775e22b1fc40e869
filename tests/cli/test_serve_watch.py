"""`helexa serve` with its log file next to models.toml: the watcher sees only the config files."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx

from helexa.cli.serve_cmd import setup_logging
from tests.cli.serve_harness import READY_TIMEOUT_S, running_serve, tiny_entry


def test_a_log_file_next_to_models_toml_does_not_feed_the_watcher(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    # At debug level the library's own lines are shown: only the filter keeps it quiet.
    with running_serve(
        tmp_path, tiny_entry("helexa/tiny", tiny_model_dir), extra_args=("--log-level", "debug")
    ) as serve:
        serve.wait_loaded(["helexa/tiny"])
        rounds = httpx.get(f"{serve.url}/admin/fleet").json()["reconcile"]["rounds"]
        with serve.models.open("a") as models:
            models.write("# a saved edit\n")
        serve.wait_for_line("config file change seen, reconciling")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while httpx.get(f"{serve.url}/admin/fleet").json()["reconcile"]["rounds"] <= rounds:
            assert time.monotonic() < deadline, "the edit was not reconciled"
            time.sleep(0.05)
        seen = [line for line in serve.output().splitlines() if "change detected" in line]
        assert seen, "watchfiles logged nothing at debug level"
        assert all("models.toml" in line and "serve.log" not in line for line in seen), seen


def test_watchfiles_chatter_is_debug_only() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging(False, "INFO")
        assert not logging.getLogger("watchfiles.main").isEnabledFor(logging.INFO)
        assert logging.getLogger("helexa.serve").isEnabledFor(logging.INFO)
        setup_logging(False, "DEBUG")
        assert logging.getLogger("watchfiles.main").isEnabledFor(logging.INFO)
    finally:
        logging.getLogger("watchfiles").setLevel(logging.NOTSET)
        root.handlers[:] = handlers
        root.setLevel(level)
