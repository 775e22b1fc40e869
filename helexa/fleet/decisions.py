"""One grep-friendly log line per decision, also kept in the fleet state.

`decision=load model=m neuron=n reason="..."`: the reason is JSON-quoted so a
quote inside it cannot break the line; `--log-json` gets the same fields from
the record's `decision` attribute instead of parsing the message.
"""

from __future__ import annotations

import json
import logging
import time

from helexa.fleet.state import DecisionKind, FleetState

log = logging.getLogger("helexa.fleet.decisions")


def log_decision(
    fleet: FleetState, kind: DecisionKind, model: str, neuron: str | None, reason: str
) -> None:
    """Log the decision line and record it for /admin/fleet and `helexa status`."""
    fields = {"decision": kind, "model": model, "neuron": neuron or "-", "reason": reason}
    log.info(
        "decision=%s model=%s neuron=%s reason=%s",
        kind,
        model,
        neuron or "-",
        json.dumps(reason),
        extra={"decision": fields},
    )
    fleet.record_decision(kind, model, neuron, reason, time.time())
