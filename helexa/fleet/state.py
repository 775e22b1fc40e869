"""The observed fleet state: plain dataclasses, no I/O.

Everything here is re-learnable by polling the neurons (the gateway
keeps no state a restart would lose). The poller feeds wire
models in through the `apply_*` / `record_*` methods; router, placement and
catalogue read it. Fields that only say *when* we looked (`last_poll_at`)
or what we decided (`decisions`) are excluded from equality, so a fleet
rebuilt by polling compares equal to the one it replaces.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from helexa.fleet.inflight import InFlightLedger
from helexa.protocol.neuron import Device, Discovery, ModelInfo, ModelsList, ModelState

NeuronKind = Literal["neuron", "openai"]
DecisionKind = Literal[
    "place",
    "evict",
    "load",
    "unload",
    "reload",
    "keep_alive",
    "defrag",
    "no_placement",
    "failover",
    "route",
]

# Recent decisions kept for /admin/fleet and `helexa status`; older ones live in the log.
DECISION_HISTORY = 256
# dtype key used when a neuron does not say which dtype it loaded.
UNKNOWN_DTYPE = "auto"


@dataclass
class DeviceSnapshot:
    """One device of a neuron as last reported by `/discovery`."""

    index: int
    name: str
    kind: str
    memory_total_mb: int
    memory_free_mb: int

    @classmethod
    def from_wire(cls, device: Device) -> DeviceSnapshot:
        return cls(
            index=device.index,
            name=device.name,
            kind=device.kind,
            memory_total_mb=device.memory_total_mb,
            memory_free_mb=device.memory_free_mb,
        )


@dataclass
class ModelLocation:
    """One model on one neuron, as the neuron last reported it."""

    model_id: str
    neuron: str
    state: ModelState
    memory_mb: int = 0
    dtype: str | None = None
    devices: list[int] = field(default_factory=list)
    in_flight: int = 0
    queued: int = 0
    max_in_flight: int = 1
    last_used_at: float | None = None
    loaded_at: float | None = None
    context_length: int | None = None
    error: str | None = None
    capabilities: list[str] = field(default_factory=list)
    path: str | None = None  # as requested at load (None: not given, or not reported)
    revision: str | None = None
    engine: str = "transformers"
    progress: int | None = None  # percent of the weights read, while loading (when measured)
    # This gateway's own requests: live in the ledger (the poll replaces this object),
    # with how many of them the neuron's `in_flight` already counted when it was polled.
    ledger: InFlightLedger | None = field(default=None, compare=False, repr=False)
    own_at_poll: int = field(default=0, compare=False)

    @classmethod
    def from_wire(
        cls, neuron: str, info: ModelInfo, ledger: InFlightLedger | None = None
    ) -> ModelLocation:
        own = ledger.count(neuron, info.id) if ledger is not None else 0
        return cls(
            model_id=info.id,
            neuron=neuron,
            state=info.state,
            memory_mb=info.memory_mb,
            dtype=info.dtype,
            devices=list(info.devices),
            in_flight=info.in_flight,
            queued=info.queued,
            max_in_flight=info.max_in_flight,
            last_used_at=info.last_used_at,
            loaded_at=info.loaded_at,
            context_length=info.context_length,
            error=info.error,
            capabilities=list(info.capabilities),
            path=info.path,
            revision=info.revision,
            engine=info.engine,
            progress=info.progress.percent if info.progress and info.state == "loading" else None,
            ledger=ledger,
            own_at_poll=own,
        )

    @property
    def active(self) -> int:
        """Requests in flight now: others' as last polled, plus this gateway's own as of now
        (one sent since the poll counts at once, one finished since stops counting)."""
        if self.ledger is None:
            return self.in_flight
        others = max(0, self.in_flight - self.own_at_poll)
        return others + self.ledger.count(self.neuron, self.model_id)

    @property
    def busy_score(self) -> float:
        """`(active + queued) / max_in_flight`: 0 idle, 1 saturated, >1 queueing."""
        return (self.active + self.queued) / max(1, self.max_in_flight)

    @property
    def idle(self) -> bool:
        return self.active + self.queued == 0

    @property
    def servable(self) -> bool:
        return self.state == "loaded"

    def last_activity(self) -> float | None:
        """When it last did something: last use, else when it finished loading."""
        return self.last_used_at if self.last_used_at is not None else self.loaded_at

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "neuron": self.neuron,
            "state": self.state,
            "memory_mb": self.memory_mb,
            "dtype": self.dtype,
            "devices": self.devices,
            "in_flight": self.active,
            "queued": self.queued,
            "max_in_flight": self.max_in_flight,
            "last_used_at": self.last_used_at,
            "loaded_at": self.loaded_at,
            "context_length": self.context_length,
            "error": self.error,
            "capabilities": self.capabilities,
            "engine": self.engine,
            "progress": self.progress,
        }


@dataclass
class ObservedNeuron:
    """One `[[neurons]]` entry and what its last polls said about it.

    A neuron starts unhealthy (never polled) and reads "starting" until it first
    answers: a local one (its process is ours, coming up) for as long as that
    takes, another one for `failure_threshold` failed polls. One successful poll
    marks it up, `failure_threshold` consecutive failures mark it down (see
    `record_failure`).
    """

    name: str
    endpoint: str
    kind: NeuronKind = "neuron"
    healthy: bool = False
    local: bool = field(default=False, compare=False)  # supervised by this `helexa serve`
    # Not answered yet and not given up on (see the class docstring).
    starting: bool = field(default=True, compare=False)
    consecutive_failures: int = 0
    last_poll_at: float | None = field(default=None, compare=False)
    last_error: str | None = None
    devices: list[DeviceSnapshot] = field(default_factory=list)
    models: dict[str, ModelLocation] = field(default_factory=dict)
    cycles: int = 0
    version: str | None = None
    hostname: str | None = None
    # kind="openai": the configured model list (routed, never loaded/unloaded by us).
    static_models: list[str] = field(default_factory=list)
    # The fleet's in-flight ledger, handed to each location the polls build.
    ledger: InFlightLedger | None = field(default=None, compare=False, repr=False)

    @property
    def managed(self) -> bool:
        """Whether helexa loads and unloads models here (a neuron, not a foreign server)."""
        return self.kind == "neuron"

    @property
    def health(self) -> str:
        """up, starting (has not answered yet) or down, for reasons and views."""
        if self.healthy:
            return "up"
        return "starting" if self.starting else "down"

    @property
    def free_memory_mb(self) -> int:
        return sum(d.memory_free_mb for d in self.devices)

    @property
    def total_memory_mb(self) -> int:
        return sum(d.memory_total_mb for d in self.devices)

    def servable_models(self) -> list[ModelLocation]:
        return [loc for loc in self.models.values() if loc.servable]

    def is_idle(self) -> bool:
        """No request in flight or queued on any model here."""
        return all(loc.idle for loc in self.models.values())

    # --- feeding it (called by the poller, pure) ---------------------------------

    def record_success(self, now: float) -> bool:
        """A poll answered. Returns whether health flipped."""
        flipped = not self.healthy
        self.healthy = True
        self.starting = False
        self.consecutive_failures = 0
        self.last_error = None
        self.last_poll_at = now
        return flipped

    def record_failure(self, error: str, now: float, failure_threshold: int) -> bool:
        """A poll failed; down after `failure_threshold` in a row. Returns whether it flipped."""
        self.consecutive_failures += 1
        self.last_error = error
        self.last_poll_at = now
        if not self.local and self.consecutive_failures >= failure_threshold:
            self.starting = False
        if self.healthy and self.consecutive_failures >= failure_threshold:
            # Down: what it held is unreachable, and gone if it restarts. Forgetting it
            # keeps this state equal to one a fresh gateway would learn.
            self.healthy = False
            self.models = {}
            self.devices = []
            return True
        return False

    def record_restart(self) -> None:
        """Its process was just restarted (defrag): down and empty until it answers again."""
        self.healthy = False
        self.starting = True
        self.consecutive_failures = 0
        self.models = {}
        self.devices = []

    def apply_discovery(self, discovery: Discovery) -> None:
        self.devices = [DeviceSnapshot.from_wire(d) for d in discovery.devices]
        self.version = discovery.version
        self.hostname = discovery.hostname

    def apply_models(self, models: ModelsList) -> None:
        self.models = {
            info.id: ModelLocation.from_wire(self.name, info, self.ledger) for info in models.models
        }
        self.cycles = models.cycles

    def apply_static_models(self, model_ids: list[str]) -> None:
        """kind="openai": models are always "loaded" (their load is read from the ledger)."""
        fresh: dict[str, ModelLocation] = {}
        for model_id in model_ids:
            fresh[model_id] = self.models.get(model_id) or ModelLocation(
                model_id=model_id, neuron=self.name, state="loaded", ledger=self.ledger
            )
        self.models = fresh

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "kind": self.kind,
            "healthy": self.healthy,
            "starting": self.starting,
            "consecutive_failures": self.consecutive_failures,
            "last_poll_at": self.last_poll_at,
            "last_error": self.last_error,
            "version": self.version,
            "hostname": self.hostname,
            "cycles": self.cycles,
            "free_memory_mb": self.free_memory_mb,
            "total_memory_mb": self.total_memory_mb,
            "devices": [
                {
                    "index": d.index,
                    "name": d.name,
                    "kind": d.kind,
                    "memory_total_mb": d.memory_total_mb,
                    "memory_free_mb": d.memory_free_mb,
                }
                for d in self.devices
            ],
            "models": [loc.to_json() for loc in self.models.values()],
        }


@dataclass(frozen=True)
class Decision:
    """One placement / eviction / lifecycle decision, with the reason an operator reads."""

    kind: DecisionKind
    model: str
    neuron: str | None
    reason: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "neuron": self.neuron,
            "reason": self.reason,
            "at": self.at,
        }


@dataclass
class FleetState:
    """All neurons by name, plus what polls taught us about model footprints."""

    neurons: dict[str, ObservedNeuron] = field(default_factory=dict)
    # Measured memory_mb per (model id, dtype), remembered across unloads so the
    # next placement of the same model uses a real number instead of an estimate.
    memory_history: dict[tuple[str, str], int] = field(default_factory=dict)
    decisions: deque[Decision] = field(
        default_factory=lambda: deque(maxlen=DECISION_HISTORY), compare=False
    )
    # Per-request replica choices (helexa.gateway.route_log), apart so they never
    # push the rarer placement decisions out.
    routes: deque[Decision] = field(
        default_factory=lambda: deque(maxlen=DECISION_HISTORY), compare=False
    )
    # Requests this gateway has sent and not finished: kept apart from the polled
    # locations, which every poll replaces.
    in_flight: InFlightLedger = field(default_factory=InFlightLedger, compare=False)

    def add_neuron(
        self,
        name: str,
        endpoint: str,
        kind: NeuronKind = "neuron",
        static_models: list[str] | None = None,
        local: bool = False,
    ) -> ObservedNeuron:
        neuron = ObservedNeuron(
            name=name,
            endpoint=endpoint,
            kind=kind,
            static_models=list(static_models or []),
            local=local,
            ledger=self.in_flight,
        )
        self.neurons[name] = neuron
        return neuron

    def healthy_neurons(self) -> list[ObservedNeuron]:
        return [n for n in self.neurons.values() if n.healthy]

    def locations(self, model_id: str) -> list[ModelLocation]:
        """Every neuron's copy of `model_id`, in any state, healthy or not, by neuron name."""
        return [
            n.models[model_id]
            for n in sorted(self.neurons.values(), key=lambda n: n.name)
            if model_id in n.models
        ]

    def load_percent(self, model_id: str) -> int | None:
        """How far the furthest load of `model_id` has read its weights; None if unmeasured."""
        measured = [
            loc.progress
            for loc in self.locations(model_id)
            if loc.state == "loading" and loc.progress is not None
        ]
        return max(measured) if measured else None

    def model_ids(self) -> list[str]:
        """Every model any neuron holds, sorted."""
        return sorted({m for n in self.neurons.values() for m in n.models})

    def learn_memory(self, neuron: ObservedNeuron) -> None:
        """Remember the measured footprint of every loaded model on `neuron`."""
        for loc in neuron.models.values():
            if loc.state == "loaded" and loc.memory_mb > 0:
                key = (loc.model_id, loc.dtype or UNKNOWN_DTYPE)
                # Re-insert so the newest measurement is last (used for dtype "auto").
                self.memory_history.pop(key, None)
                self.memory_history[key] = loc.memory_mb

    def measured_memory_mb(self, model_id: str, dtype: str | None) -> int | None:
        """Measured footprint of `model_id` in `dtype`; for "auto"/None the newest of any dtype."""
        if dtype and dtype != UNKNOWN_DTYPE:
            exact = self.memory_history.get((model_id, dtype))
            if exact is not None:
                return exact
            # A neuron that did not report its dtype measured *some* load: better than none.
            return self.memory_history.get((model_id, UNKNOWN_DTYPE))
        newest: int | None = None
        for (mid, _), mb in self.memory_history.items():
            if mid == model_id:
                newest = mb
        return newest

    def record_decision(
        self, kind: DecisionKind, model: str, neuron: str | None, reason: str, at: float
    ) -> Decision:
        decision = Decision(kind=kind, model=model, neuron=neuron, reason=reason, at=at)
        self.decisions.append(decision)
        return decision

    def to_json(self) -> dict[str, Any]:
        """The observed state for `/admin/fleet`."""
        return {
            "neurons": [n.to_json() for n in sorted(self.neurons.values(), key=lambda n: n.name)],
            "memory_history": [
                {"model": mid, "dtype": dtype, "memory_mb": mb}
                for (mid, dtype), mb in sorted(self.memory_history.items())
            ],
            "decisions": [d.to_json() for d in self.decisions],
            "routes": [d.to_json() for d in self.routes],
        }
