"""The client for a neuron's control API (load, unload, tokenize): cold loads and reconcile.

Calls carry the neuron's token, read from its `token_file` on every call
(cached by mtime, so a rotated token is picked up by the next call). Neuron
errors come back as the matching `APIError` so routes can render them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from helexa.errors import (
    APIError,
    BadRequest,
    ContextLengthExceeded,
    InsufficientMemory,
    LoadFailed,
    ModelNotFound,
    ModelNotLoaded,
    ModelUnloading,
    Overloaded,
    UpstreamError,
    UpstreamTimeout,
)
from helexa.fleet.sessions import LazySession, SessionFactory
from helexa.protocol.neuron import (
    LoadRequest,
    ModelInfo,
    ModelsList,
    TokenizeRequest,
    TokenizeResponse,
    UnloadRequest,
)

log = logging.getLogger("helexa.fleet.neuron_client")


_ERRORS_BY_CODE: dict[str, type[APIError]] = {
    "model_not_found": ModelNotFound,
    "model_not_loaded": ModelNotLoaded,
    "insufficient_memory": InsufficientMemory,
    "load_failed": LoadFailed,
    "model_unloading": ModelUnloading,
    "overloaded": Overloaded,
    "invalid_request": BadRequest,
    "context_length_exceeded": ContextLengthExceeded,
}


class NeuronAddress(Protocol):
    """The fleet.toml `[[neurons]]` fields a call needs (config's NeuronEntry fits)."""

    @property
    def name(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def token_file(self) -> Path | None: ...


class TokenFiles:
    """Reads token files per call, re-reading only when the file changed."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[int, int, str]] = {}

    def token(self, path: Path) -> str:
        stat = os.stat(path)
        cached = self._cache.get(path)
        if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        token = path.read_text(encoding="utf-8").strip()
        self._cache[path] = (stat.st_mtime_ns, stat.st_size, token)
        return token

    def headers(self, neuron: NeuronAddress) -> dict[str, str]:
        if neuron.token_file is None:
            return {}
        try:
            token = self.token(Path(neuron.token_file))
        except OSError as exc:
            raise UpstreamError(f"cannot read token_file of {neuron.name}: {exc}") from exc
        return {"Authorization": f"Bearer {token}"} if token else {}


class NeuronClient:
    """Control calls to neurons over one pooled aiohttp session."""

    def __init__(
        self,
        session_factory: SessionFactory = aiohttp.ClientSession,
        tokens: TokenFiles | None = None,
        *,
        connect_timeout: float = 5.0,
        load_timeout: float = 600.0,
        control_timeout: float = 120.0,
    ) -> None:
        self._session = LazySession(session_factory)
        self.tokens = tokens or TokenFiles()
        self.connect_timeout = connect_timeout
        self.load_timeout = load_timeout
        self.control_timeout = control_timeout

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session.get()

    async def close(self) -> None:
        await self._session.close()

    async def load(self, neuron: NeuronAddress, request: LoadRequest) -> ModelInfo:
        """Returns once the neuron has loaded the model (or raises its error)."""
        body = await self._post(
            neuron, "/models/load", request.model_dump(exclude_none=True), self.load_timeout
        )
        return ModelInfo.model_validate(body)

    async def unload(
        self, neuron: NeuronAddress, model: str, drain_timeout_s: float | None = None
    ) -> ModelsList:
        request = UnloadRequest(model=model, drain_timeout_s=drain_timeout_s)
        timeout = self.control_timeout + (drain_timeout_s or 0.0)
        body = await self._post(
            neuron, "/models/unload", request.model_dump(exclude_none=True), timeout
        )
        return ModelsList.model_validate(body)

    async def tokenize(self, neuron: NeuronAddress, request: TokenizeRequest) -> int:
        body = await self._post(
            neuron, "/v1/tokenize", request.model_dump(exclude_none=True), self.control_timeout
        )
        return TokenizeResponse.model_validate(body).count

    async def _post(
        self, neuron: NeuronAddress, path: str, payload: dict[str, Any], limit_s: float
    ) -> Any:
        url = neuron.endpoint.rstrip("/") + path
        client_timeout = aiohttp.ClientTimeout(total=limit_s, sock_connect=self.connect_timeout)
        try:
            async with self.session.post(
                url, json=payload, headers=self.tokens.headers(neuron), timeout=client_timeout
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    raise error_from_response(
                        neuron.name, response.status, raw, response.headers.get("Retry-After")
                    )
                return json.loads(raw)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"neuron {neuron.name}: {path} took over {limit_s:g}s") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"neuron {neuron.name} unreachable: {exc}") from exc
        except ValueError as exc:
            raise UpstreamError(f"neuron {neuron.name}: {path} answered non-JSON") from exc


def error_from_response(
    neuron: str, status: int, raw: bytes, retry_after: str | None = None
) -> APIError:
    """The APIError a neuron's OpenAI error envelope means."""
    message = f"neuron {neuron} answered HTTP {status}"
    code = ""
    try:
        error = json.loads(raw)["error"]
        message = f"neuron {neuron}: {error.get('message') or message}"
        code = str(error.get("code") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    retry = float(retry_after) if retry_after and retry_after.isdigit() else None
    cls = _ERRORS_BY_CODE.get(code)
    if cls is not None:
        return cls(message, retry_after=retry)
    return UpstreamError(message, status=status if status >= 500 else 502, code=code or None)
