"""The models this neuron holds: coalesced loads, drained unloads, state for /models.

Loads run in a worker thread (the blocking engine loader) so the event loop
keeps answering /health and streaming other models' tokens. A second load of
a model already loading awaits the same future (single flight). Unload marks
the model `unloading` (new requests get 503 model_unloading), waits for
in-flight generations up to the drain timeout, aborts the rest at their next
token, then closes the model and counts a cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from helexa.errors import APIError, LoadFailed, ModelNotLoaded, ModelUnloading
from helexa.neuron.admission import Admission
from helexa.neuron.load_progress import ProgressProbe, ProgressSource
from helexa.protocol.neuron import LoadProgress, LoadRequest, ModelInfo, ModelState

log = logging.getLogger("helexa.neuron.registry")


class ServingModel(Protocol):
    """What the registry and the routes need from an engine's loaded model."""

    model_id: str
    tokenizer: Any
    dtype: str
    devices: list[int]
    context_length: int

    @property
    def memory_mb(self) -> int: ...  # a server engine measures it on every read

    # `stats` (a StreamStats) is filled in by engines that can tell (the in-process one).
    def stream(
        self, prompt_ids: list[int], params: Any, stats: Any = None
    ) -> AsyncIterator[int]: ...

    def close(self) -> None: ...


Loader = Callable[[LoadRequest], ServingModel]  # blocking; run in a thread
AdmissionFactory = Callable[[str], Admission]


@dataclass(eq=False)
class Generation:
    """One running request; `abort()` makes it stop at its next token."""

    aborted: asyncio.Event = field(default_factory=asyncio.Event)

    def abort(self) -> None:
        self.aborted.set()


@dataclass(eq=False)
class ModelEntry:
    id: str
    request: LoadRequest
    admission: Admission
    state: ModelState = "loading"
    error: str | None = None
    model: ServingModel | None = None
    loaded_at: float | None = None
    last_used_at: float | None = None
    load_seconds: float | None = None
    failed_at: float | None = None  # monotonic; a failed entry expires after failed_ttl
    generations: set[Generation] = field(default_factory=set)
    generation_config: dict[str, Any] = field(default_factory=dict)  # the model's defaults
    probe: ProgressProbe | None = None  # while loading, when the load can be measured

    @property
    def sampling_defaults(self) -> dict[str, Any]:
        return dict(self.request.sampling or {})

    def info(self) -> ModelInfo:
        m = self.model
        return ModelInfo(
            id=self.id,
            state=self.state,
            error=self.error,
            devices=list(m.devices) if m else [],
            memory_mb=m.memory_mb if m else 0,
            dtype=m.dtype if m else self.request.dtype,
            context_length=m.context_length if m else self.request.context_length,
            in_flight=self.admission.in_flight,
            queued=self.admission.queued,
            max_in_flight=self.admission.max_in_flight,
            loaded_at=self.loaded_at,
            last_used_at=self.last_used_at,
            load_seconds=self.load_seconds,
            capabilities=_capabilities(m),
            path=self.request.path,
            revision=self.request.revision,
            format=getattr(m, "weights_format", None),
            quantization=getattr(m, "quantization", None),
            engine=self.request.engine or "transformers",
            progress=self.progress(),
            prefix_cache_mb=getattr(m, "prefix_cache_mb", 0),
            prefix_cache_bytes=getattr(m, "prefix_cache_bytes", 0),
        )

    def progress(self) -> LoadProgress | None:
        probe = self.probe
        if self.state != "loading" or probe is None:
            return None
        try:
            return probe.progress()
        except OSError as exc:  # /proc unreadable: no figure rather than no /models
            log.debug("load progress of %s: %s", self.id, exc)
            return None


def _generation_config(model: ServingModel) -> dict[str, Any]:
    """The model's generation_config.json as a dict ({} when it has none)."""
    config = getattr(getattr(model, "model", None), "generation_config", None)
    if config is None:
        return {}
    as_dict: dict[str, Any] = config.to_dict()
    return as_dict


def _capabilities(model: ServingModel | None) -> list[str]:
    if model is None:
        return []
    caps = ["chat", "completions"]
    template = getattr(model.tokenizer, "chat_template", None) or ""
    if isinstance(template, str):
        if "tools" in template:
            caps.append("tools")
        if "<think>" in template:
            caps.append("thinking")
    return caps


class Registry:
    def __init__(
        self,
        loader: Loader,
        admission_factory: AdmissionFactory,
        default_drain_timeout: float = 30.0,
        on_load: Callable[[str, float | None], None] | None = None,
        failed_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        progress_source: ProgressSource | None = None,
    ) -> None:
        self._loader = loader
        self._progress_source = progress_source
        # Failed loads are shown for a while, then forgotten: any client may name any
        # model, and each name would otherwise stay in /models and metric labels forever.
        self._failed_ttl = failed_ttl
        self._clock = clock
        self._admission_factory = admission_factory
        self._default_drain = default_drain_timeout
        self._on_load = on_load  # (result, seconds) for metrics
        self._entries: dict[str, ModelEntry] = {}
        self._loads: dict[str, asyncio.Future[ModelEntry]] = {}
        self._unloads: dict[str, asyncio.Task[None]] = {}
        self.cycles = 0

    # --- reading ---------------------------------------------------------

    def prefix_cache_evictions(self) -> dict[str, int]:
        """Per loaded model with a prefix cache: the entries it evicted since its load."""
        counts = {}
        for entry in list(self._entries.values()):
            cache = getattr(entry.model, "prefix_cache", None)
            if cache is not None:
                counts[entry.id] = int(cache.counters.evictions)
        return counts

    def infos(self) -> list[ModelInfo]:
        # A snapshot first: the loader thread reads this (memory_by_device) while the
        # event loop may add or remove entries; copying the dict's values is atomic.
        # Expired failed loads are left out here and deleted on the event loop.
        now = self._clock()
        return [e.info() for e in list(self._entries.values()) if not self._expired(e, now)]

    def _expired(self, entry: ModelEntry, now: float) -> bool:
        return (
            entry.state == "failed"
            and entry.failed_at is not None
            and now - entry.failed_at >= self._failed_ttl
        )

    def expire_failed(self) -> None:
        """Forget failed loads past their time (event loop only: it changes the dict)."""
        now = self._clock()
        for model_id in [e.id for e in self._entries.values() if self._expired(e, now)]:
            del self._entries[model_id]

    def memory_by_device(self) -> dict[int, int]:
        """MB held by this neuron's models per device index (spread evenly over a model's)."""
        used: dict[int, int] = {}
        for info in self.infos():
            if not info.memory_mb:
                continue
            devices = info.devices or [0]
            share = info.memory_mb // len(devices)
            for index in devices:
                used[index] = used.get(index, 0) + share
        return used

    def entry(self, model_id: str) -> ModelEntry | None:
        self.expire_failed()
        return self._entries.get(model_id)

    def servable(self, model_id: str) -> ModelEntry:
        """The entry to run a request on, or the error that says why not."""
        entry = self._entries.get(model_id)
        if entry is None or entry.state in ("loading", "failed"):
            detail = f" (state {entry.state})" if entry else ""
            raise ModelNotLoaded(
                f"model {model_id!r} is not loaded on this neuron{detail}", param="model"
            )
        if entry.state == "unloading":
            raise ModelUnloading(f"model {model_id!r} is being unloaded", param="model")
        return entry

    # --- loading ---------------------------------------------------------

    async def load(self, request: LoadRequest) -> ModelEntry:
        """Load (or join the load already running); returns when loaded, raises on failure."""
        pending = self._unloads.get(request.model)
        if pending is not None:
            await asyncio.shield(pending)
        existing = self._entries.get(request.model)
        if existing is not None and existing.state == "loaded":
            return existing
        running = self._loads.get(request.model)
        if running is None:
            # The entry exists from this moment, so /models shows "loading" at once.
            entry = ModelEntry(request.model, request, self._admission_factory(request.model))
            self._entries[request.model] = entry
            running = asyncio.ensure_future(self._load(entry))
            self._loads[request.model] = running
            running.add_done_callback(lambda _f: self._loads.pop(request.model, None))
        # shield: a caller that goes away must not cancel the load others wait on.
        return await asyncio.shield(running)

    async def _load(self, entry: ModelEntry) -> ModelEntry:
        request = entry.request
        started = time.monotonic()
        try:
            model = await asyncio.to_thread(self._measured_load, entry)
        except Exception as exc:
            entry.state, entry.error = "failed", str(exc) or type(exc).__name__
            entry.failed_at = self._clock()
            self._count_load("failed", None)
            log.warning("load of %s failed: %s", request.model, entry.error)
            if isinstance(exc, APIError):
                raise
            raise LoadFailed(f"loading {request.model!r} failed: {entry.error}") from exc
        entry.model = model
        entry.generation_config = _generation_config(model)
        entry.load_seconds = time.monotonic() - started
        entry.loaded_at = entry.last_used_at = time.time()
        entry.state, entry.error = "loaded", None
        self._count_load("loaded", entry.load_seconds)
        self._watch(entry, model)
        log.info("loaded %s in %.2fs (%d MB)", request.model, entry.load_seconds, model.memory_mb)
        return entry

    def _measured_load(self, entry: ModelEntry) -> ServingModel:
        """The loader, with a progress probe on the entry while it runs (loader thread)."""
        if self._progress_source is not None:
            try:
                entry.probe = self._progress_source(entry.request)
            except OSError as exc:  # a weight file gone already: the load will say so
                log.debug("no load progress for %s: %s", entry.id, exc)
        try:
            return self._loader(entry.request)
        finally:
            entry.probe = None

    def _watch(self, entry: ModelEntry, model: ServingModel) -> None:
        """A server engine's process that dies unasked makes its model `failed` (with the
        server's last log lines), so the reconciler loads it again like any failed load."""
        watch = getattr(model, "on_unexpected_exit", None)
        if watch is None:
            return
        loop = asyncio.get_running_loop()
        watch(lambda reason: loop.call_soon_threadsafe(self._crashed, entry, model, reason))

    def _crashed(self, entry: ModelEntry, model: ServingModel, reason: str) -> None:
        if entry.model is not model or self._entries.get(entry.id) is not entry:
            return  # already unloaded or replaced
        log.warning("%s failed: %s", entry.id, reason)
        entry.state, entry.error, entry.model = "failed", reason, None
        for gen in list(entry.generations):
            gen.abort()
        self._count_load("failed", None)

    def _count_load(self, result: str, seconds: float | None) -> None:
        if self._on_load is not None:
            self._on_load(result, seconds)

    # --- running ---------------------------------------------------------

    @asynccontextmanager
    async def generation(self, entry: ModelEntry, priority: int = 0) -> AsyncIterator[Generation]:
        """Hold an admission slot for one request; registered so unload can drain it."""
        async with entry.admission.slot(priority):
            if entry.state != "loaded":  # unload began while we queued
                raise ModelUnloading(f"model {entry.id!r} is being unloaded", param="model")
            gen = Generation()
            entry.generations.add(gen)
            entry.last_used_at = time.time()
            try:
                yield gen
            finally:
                entry.generations.discard(gen)
                entry.last_used_at = time.time()

    # --- unloading -------------------------------------------------------

    async def unload(self, model_id: str, drain_timeout_s: float | None = None) -> None:
        entry = self._entries.get(model_id)
        if entry is None:
            raise ModelNotLoaded(f"model {model_id!r} is not loaded on this neuron", param="model")
        running_load = self._loads.get(model_id)
        if running_load is not None:
            # Unloading mid-load: let the load finish (it cannot be interrupted), then unload.
            await asyncio.gather(asyncio.shield(running_load), return_exceptions=True)
        if model_id in self._unloads:
            await asyncio.shield(self._unloads[model_id])
            return
        if entry.state == "failed":
            del self._entries[model_id]
            return
        timeout = self._default_drain if drain_timeout_s is None else drain_timeout_s
        entry.state = "unloading"  # from this moment new requests are refused
        task = asyncio.ensure_future(self._unload(entry, timeout))
        self._unloads[model_id] = task
        task.add_done_callback(lambda _t: self._unloads.pop(model_id, None))
        await asyncio.shield(task)

    async def _unload(self, entry: ModelEntry, drain_timeout: float) -> None:
        try:
            async with asyncio.timeout(drain_timeout):
                await entry.admission.wait_idle()
        except TimeoutError:
            log.warning(
                "drain of %s timed out after %.1fs; aborting %d generations",
                entry.id,
                drain_timeout,
                len(entry.generations),
            )
            for gen in list(entry.generations):
                gen.abort()
            await entry.admission.wait_idle()
        model, entry.model = entry.model, None
        if model is not None:
            await asyncio.to_thread(model.close)
        del self._entries[entry.id]
        self.cycles += 1
        log.info("unloaded %s (cycle %d)", entry.id, self.cycles)

    async def close(self) -> None:
        """Unload everything without draining (shutdown)."""
        for model_id in list(self._entries):
            with suppress(APIError):
                await self.unload(model_id, drain_timeout_s=0)
