"""Concurrent neuron polling with debounced health (the I/O shell around FleetState).

Every neuron is polled at once, each under its own timeout, so a hung host
delays nobody else. A helexa neuron answers `/discovery` (fresh free memory)
and `/models`; a `kind = "openai"` server is health-checked with
`GET {endpoint}/models` and carries its configured static model list.
`failure_threshold` failures in a row mark a neuron down, one success marks
it up. Whoever needs to react to a change (a neuron going down, a load
finishing) awaits `wait_for(predicate)` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from helexa.fleet.sessions import LazySession, SessionFactory
from helexa.fleet.state import FleetState, NeuronKind, ObservedNeuron
from helexa.protocol.neuron import Discovery, ModelsList

log = logging.getLogger("helexa.fleet.poller")

TokenReader = Callable[[Path], Awaitable[str]]
ChangeListener = Callable[[ObservedNeuron], None]
WireT = TypeVar("WireT", bound=BaseModel)


class NeuronEntryLike(Protocol):
    """The fleet.toml `[[neurons]]` fields the poller reads (config's NeuronEntry fits)."""

    @property
    def name(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def kind(self) -> NeuronKind: ...
    @property
    def token_file(self) -> Path | None: ...
    @property
    def models(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class PollSettings:
    interval: float = 2.0  # seconds between the starts of two rounds
    timeout: float = 2.0  # per neuron and round: its calls run concurrently under it
    failure_threshold: int = 3  # consecutive failures before a neuron is marked down


class PollFailed(Exception):
    """One neuron's poll failed; the message becomes its `last_error`."""


async def read_token_file(path: Path) -> str:
    """The shared secret in `path` (whitespace stripped); read off the event loop."""
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    return text.strip()


def sync_neurons(fleet: FleetState, entries: Sequence[NeuronEntryLike]) -> None:
    """Make `fleet.neurons` match fleet.toml: add new entries, drop removed ones.

    An entry whose endpoint or kind changed starts over (unknown health), since
    what we knew was about another server.
    """
    wanted = {e.name: e for e in entries}
    for name in list(fleet.neurons):
        if name not in wanted:
            del fleet.neurons[name]
    for name, entry in wanted.items():
        current = fleet.neurons.get(name)
        if current is None or (current.endpoint, current.kind) != (entry.endpoint, entry.kind):
            local = bool(getattr(entry, "local", False))
            fleet.add_neuron(name, entry.endpoint, entry.kind, list(entry.models), local)
        else:
            current.static_models = list(entry.models)
            current.local = bool(getattr(entry, "local", False))


class StateChanges:
    """Lets tasks await a condition on the fleet without polling it with sleeps."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every waiter to re-check its condition (call after changing the state)."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, condition: Callable[[], bool], within: float) -> bool:
        """True once `condition()` holds, False if it still does not after `within` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                return condition()
        return True


class FleetPoller:
    """Keeps a FleetState fresh by polling every neuron in fleet.toml."""

    def __init__(
        self,
        fleet: FleetState,
        entries: Sequence[NeuronEntryLike],
        settings: PollSettings | None = None,
        *,
        session_factory: SessionFactory = aiohttp.ClientSession,
        token_reader: TokenReader = read_token_file,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fleet = fleet
        self.settings = settings or PollSettings()
        self.changes = StateChanges()
        self.listeners: list[ChangeListener] = []
        self._entries: dict[str, NeuronEntryLike] = {}
        # One poll per neuron at a time, so an older answer never lands after a newer one.
        self._locks: dict[str, asyncio.Lock] = {}
        self._session = LazySession(session_factory)
        self._read_token = token_reader
        self._clock = clock
        self.set_entries(entries)

    def set_entries(self, entries: Sequence[NeuronEntryLike]) -> None:
        """fleet.toml changed: poll these neurons from now on."""
        self._entries = {e.name: e for e in entries}
        sync_neurons(self.fleet, entries)
        self.changes.notify()

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> FleetPoller:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def run(self) -> None:
        """Poll every `interval` seconds until cancelled; a slow round delays the next."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.poll_once()
            except Exception:  # a bug in one round must not stop polling for good
                log.exception("poll round failed")
            await asyncio.sleep(max(0.0, self.settings.interval - (loop.time() - started)))

    async def poll_once(self) -> None:
        """Poll every neuron concurrently; returns when all answered or timed out."""
        await asyncio.gather(*(self._poll_if_listed(name) for name in list(self._entries)))

    async def _poll_if_listed(self, name: str) -> None:
        # set_entries may drop a neuron while this round waits for its lock.
        if name in self._entries:
            await self.poll_neuron(name)

    async def poll_neuron(self, name: str) -> ObservedNeuron:
        """Poll one neuron now (e.g. right after a load) and apply what it said."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            return await self._poll_locked(name)

    async def _poll_locked(self, name: str) -> ObservedNeuron:
        entry = self._entries[name]  # KeyError: not (or no longer) in fleet.toml
        neuron = self.fleet.neurons[name]
        try:
            async with asyncio.timeout(self.settings.timeout):
                await self._poll(entry, neuron)
        except (TimeoutError, PollFailed, aiohttp.ClientError, OSError) as exc:
            error = _describe(exc, self.settings.timeout)
            if neuron.record_failure(error, self._clock(), self.settings.failure_threshold):
                log.warning("neuron %s is down: %s", name, error)
            else:
                log.debug("poll of %s failed: %s", name, error)
        else:
            if neuron.record_success(self._clock()):
                log.info("neuron %s is up", name)
        for listener in self.listeners:
            try:
                listener(neuron)
            except Exception:  # e.g. a metrics bug: polling and waiters carry on
                log.exception("poll listener %r failed", listener)
        self.changes.notify()
        return neuron

    async def _poll(self, entry: NeuronEntryLike, neuron: ObservedNeuron) -> None:
        headers = await self._auth_headers(entry)
        if entry.kind == "openai":
            await self._get_json(f"{entry.endpoint}/models", headers)
            neuron.apply_static_models(list(entry.models))
            return
        discovery, models = await asyncio.gather(
            self._get_wire(f"{entry.endpoint}/discovery", headers, Discovery),
            self._get_wire(f"{entry.endpoint}/models", headers, ModelsList),
        )
        neuron.apply_discovery(discovery)
        neuron.apply_models(models)
        self.fleet.learn_memory(neuron)

    async def _auth_headers(self, entry: NeuronEntryLike) -> dict[str, str]:
        if entry.token_file is None:
            return {}
        try:
            token = await self._read_token(entry.token_file)
        except OSError as exc:
            raise PollFailed(f"cannot read token_file {entry.token_file}: {exc}") from exc
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _client(self) -> aiohttp.ClientSession:
        return self._session.get()

    async def _get_json(self, url: str, headers: dict[str, str]) -> Any:
        async with self._client().get(url, headers=headers) as response:
            if response.status != 200:
                body = (await response.text())[:200]
                raise PollFailed(f"GET {url}: HTTP {response.status} {body}".rstrip())
            try:
                return await response.json(content_type=None)
            except ValueError as exc:
                raise PollFailed(f"GET {url}: not JSON ({exc})") from exc

    async def _get_wire(self, url: str, headers: dict[str, str], model: type[WireT]) -> WireT:
        data = await self._get_json(url, headers)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise PollFailed(f"GET {url}: unexpected shape: {exc}") from exc


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return str(exc) or type(exc).__name__
