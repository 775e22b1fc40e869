"""Why a request went to the replica it went to (the routing half of the decision log).

One choice per request among several replicas, so these lines are logged at
debug level (`decision=route model=m neuron=n reason="..."`, the format of
helexa.fleet.decisions) and the last ones are kept apart from the placement
decisions, as `routes` in /admin/fleet.
"""

from __future__ import annotations

import json
import logging
import time

from helexa.fleet.state import Decision, FleetState

log = logging.getLogger("helexa.fleet.decisions")


def record_route(fleet: FleetState, model: str, neuron: str, reason: str) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "decision=route model=%s neuron=%s reason=%s",
            model,
            neuron,
            json.dumps(reason),
            extra={
                "decision": {
                    "decision": "route",
                    "model": model,
                    "neuron": neuron,
                    "reason": reason,
                }
            },
        )
    fleet.routes.append(Decision("route", model, neuron, reason, time.time()))
