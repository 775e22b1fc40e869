"""The observed state: a frozen snapshot of the gateway's FleetState, and its fingerprint.

The reconciler reads the same FleetState the gateway's one poller keeps (no second
poller); `observe` copies it so a diff never races a poll.  The fingerprint covers
only what a plan depends on: which neurons answer and which models they hold in
which state and dtype.  Free memory is left out on purpose (it drifts with every
allocation); apply re-checks memory right before each action instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace

from helexa.fleet.state import FleetState, ModelLocation, ObservedNeuron

# States in which a copy counts as present: a load in progress will finish.
PRESENT_STATES = ("loading", "loaded")


@dataclass(frozen=True)
class ObservedState:
    fleet: FleetState

    @property
    def unreachable(self) -> Mapping[str, str]:
        """Managed neurons that did not answer their last poll -> why."""
        return {
            n.name: n.last_error or "not polled yet"
            for n in sorted(self.fleet.neurons.values(), key=lambda n: n.name)
            if n.managed and not n.healthy
        }

    def fingerprint(self) -> str:
        facts = [
            {
                "neuron": n.name,
                "healthy": n.healthy,
                "models": sorted(
                    [m.model_id, _presence(m), m.dtype or "", m.path or "", m.revision or ""]
                    for m in n.models.values()
                ),
            }
            for n in sorted(self.fleet.neurons.values(), key=lambda n: n.name)
            if n.managed
        ]
        blob = json.dumps(facts, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def observe(fleet: FleetState) -> ObservedState:
    return ObservedState(snapshot(fleet))


def snapshot(fleet: FleetState) -> FleetState:
    """A copy deep enough to simulate on: neurons, devices and locations are new objects."""
    copy = FleetState(memory_history=dict(fleet.memory_history))
    for name, neuron in fleet.neurons.items():
        copy.neurons[name] = copy_neuron(neuron)
    return copy


def copy_neuron(neuron: ObservedNeuron) -> ObservedNeuron:
    return replace(
        neuron,
        devices=[replace(d) for d in neuron.devices],
        models={k: copy_location(v) for k, v in neuron.models.items()},
        static_models=list(neuron.static_models),
        ledger=None,
    )


def copy_location(loc: ModelLocation) -> ModelLocation:
    """A frozen copy: the live in-flight count as of now, no ledger to change it later."""
    return replace(
        loc,
        devices=list(loc.devices),
        capabilities=list(loc.capabilities),
        in_flight=loc.active,
        ledger=None,
        own_at_poll=0,
    )


def _presence(loc: ModelLocation) -> str:
    return "present" if loc.state in PRESENT_STATES else loc.state
