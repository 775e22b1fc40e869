"""ServerProcess with real child processes: stop escalation, exit reports, RSS."""

from __future__ import annotations

import sys
import threading

from helexa.neuron.engines.process import ServerProcess

STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True)\n"
    "time.sleep(120)\n"
)


def started(script: str) -> tuple[ServerProcess, list[str], threading.Event]:
    reasons: list[str] = []
    reported = threading.Event()
    process = ServerProcess([sys.executable, "-c", script], name="stub")

    def on_exit(reason: str) -> None:
        reasons.append(reason)
        reported.set()

    process.on_unexpected_exit(on_exit)
    return process, reasons, reported


def test_a_server_that_ignores_term_is_killed_and_no_crash_is_reported() -> None:
    process, reasons, _ = started(STUBBORN)
    process.wait_ready(lambda: "up" in process.last_lines(), timeout=30)
    assert process.rss_mb() > 0
    process.stop(grace=0.3)
    assert process.returncode == -9 and not process.running
    assert reasons == []  # asked to stop: not a crash


def test_an_exit_nobody_asked_for_is_reported_with_the_last_lines() -> None:
    process, reasons, reported = started("print('weights are corrupt'); raise SystemExit(7)")
    assert reported.wait(30)
    assert reasons[0].startswith("stub exited with code 7")
    assert "weights are corrupt" in reasons[0]
    late: list[str] = []
    process.on_unexpected_exit(late.append)  # registered after the exit: told at once
    assert late == reasons
