"""The `local = true` neurons of fleet.toml as supervised children of `helexa serve`.

`sync(config)` makes the running children match a new fleet.toml: a local
neuron added is started, one removed is stopped (gracefully, see Supervisor),
one whose endpoint moved is restarted on the new one. No restart of `helexa
serve` is needed; the reconcile daemon hands every new good config here.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from helexa.config import Config, NeuronEntry
from helexa.serve.supervisor import Supervisor, local_neuron_spec

log = logging.getLogger("helexa.serve")


class LocalNeurons:
    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        # Shared with the reconciler's defrag restarts and `Running`: mutated in place.
        self.supervisors: dict[str, Supervisor] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._endpoints: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()

    def start(self, entry: NeuronEntry, config: Config) -> None:
        supervisor = Supervisor(local_neuron_spec(entry, config, self.runtime_dir))
        self.supervisors[entry.name] = supervisor
        self._endpoints[entry.name] = entry.endpoint
        self._tasks[entry.name] = asyncio.create_task(
            supervisor.run(), name=f"supervise {entry.name}"
        )

    def start_all(self, config: Config) -> None:
        for entry in config.fleet.neurons:
            if entry.local:
                self.start(entry, config)

    async def stop(self, name: str) -> None:
        supervisor = self.supervisors.pop(name)
        task = self._tasks.pop(name)
        self._endpoints.pop(name, None)
        await supervisor.stop()
        await asyncio.gather(task, return_exceptions=True)

    async def stop_all(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*(self.stop(name) for name in list(self.supervisors)))

    async def sync(self, config: Config) -> None:
        """Start the local neurons config adds, stop the ones it removes or moves."""
        async with self._lock:
            wanted = {entry.name: entry for entry in config.fleet.neurons if entry.local}
            for name in list(self.supervisors):
                entry = wanted.get(name)
                if entry is None or entry.endpoint != self._endpoints.get(name):
                    why = "removed from" if entry is None else "moved in"
                    log.info("local neuron %s %s fleet.toml: stopping it", name, why)
                    await self.stop(name)
            for name, entry in wanted.items():
                if name not in self.supervisors:
                    log.info("local neuron %s in fleet.toml: starting it", name)
                    self.start(entry, config)

    def sync_soon(self, config: Config) -> None:
        """`sync` from a synchronous config callback (the reconcile daemon's on_config)."""
        task = asyncio.get_running_loop().create_task(self.sync(config), name="local neurons")
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("syncing local neurons failed", exc_info=task.exception())
