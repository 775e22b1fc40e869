"""Who is calling: API keys as named principals, looked up by hash, and their tickets.

`KeyRing` maps the SHA-256 of every accepted key to its `Principal`: the
named keys of keys.toml, plus fleet.toml's old `api_keys` as unnamed admin
keys (named `api_keys[0]`, `api_keys[1]`, ... in metrics). Checking a key is
one hash and one dict lookup, whatever the number of keys; a dict keyed by
a hash of the presented key says nothing through its timing about any
configured key. An empty ring means an open gateway.

A request of a known key gets a `Ticket`: `admit` checks the model against
the key's globs (403) and takes its limits (helexa.gateway.quotas, 429);
`finish` (called once by the request's meter when the answer ends) gives the
limits back with the real token usage and records the usage
(helexa.gateway.usage). `close` finishes a ticket whose response never ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from fnmatch import fnmatchcase
from typing import Any, Protocol

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from helexa.asgi import JSON, send_whole
from helexa.config import Config
from helexa.config.keys import Role, hash_key
from helexa.errors import PermissionDenied
from helexa.gateway.auth import (
    PUBLIC_PATHS,
    presented_key,
    repeated_credentials,
    unauthorized_body,
)
from helexa.gateway.proxy import ResponseStats
from helexa.gateway.quotas import KeyQuota, Limits, estimate_prompt_tokens
from helexa.gateway.usage import UsageBook, UsageRecord

Clock = Callable[[], float]


@dataclass(eq=False)
class Principal:
    """One key's identity and rules; `quota` is its live limit state."""

    name: str
    role: Role
    models: tuple[str, ...]
    priority: int
    expires_at: float | None
    quota: KeyQuota
    _allowed: dict[str, bool] = field(default_factory=dict)

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def may_use(self, model_id: str) -> bool:
        allowed = self._allowed.get(model_id)
        if allowed is None:
            allowed = any(fnmatchcase(model_id, glob) for glob in self.models)
            if len(self._allowed) < 4096:  # bounded: model ids come from the catalogue
                self._allowed[model_id] = allowed
        return allowed

    def to_json(self) -> dict[str, Any]:
        limits = self.quota.limits
        return {
            "name": self.name,
            "role": self.role,
            "models": list(self.models),
            "requests_per_minute": limits.requests_per_minute,
            "tokens_per_minute": limits.tokens_per_minute,
            "max_concurrent": limits.max_concurrent,
            "priority": self.priority,
            "expires_at": self.expires_at,
            "in_flight": self.quota.in_flight,
        }


class KeyRing:
    """Every accepted key by its hex SHA-256."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self.by_hash = principals
        self.empty = not principals

    @classmethod
    def build(cls, config: Config, previous: KeyRing | None = None, now: float = 0.0) -> KeyRing:
        """The ring for `config`; a key kept by name keeps its live limits (a reload)."""
        old = {p.name: p.quota for p in previous.by_hash.values()} if previous else {}
        principals: dict[str, Principal] = {}

        def quota(name: str, limits: Limits) -> KeyQuota:
            kept = old.get(name)
            if kept is None:
                return KeyQuota(limits, now)
            kept.set_limits(limits, now)
            return kept

        for index, key in enumerate(config.fleet.gateway.api_keys):
            name = f"api_keys[{index}]"
            legacy = Principal(name, "admin", ("*",), 0, None, quota(name, Limits()))
            principals[hash_key(key)] = legacy
        for entry in config.keys.keys:
            limits = Limits(
                entry.requests_per_minute, entry.tokens_per_minute, entry.max_concurrent
            )
            principals[entry.sha256] = Principal(
                entry.name,
                entry.role,
                tuple(entry.models),
                entry.priority,
                entry.expires_at,
                quota(entry.name, limits),
            )
        return cls(principals)

    def names(self) -> list[Principal]:
        return sorted(self.by_hash.values(), key=lambda p: p.name)

    def lookup(self, presented: str) -> Principal | None:
        return self.by_hash.get(hash_key(presented))


class Refusal(Enum):
    """What `authenticate` answers for a request it refused (the 401 is already sent)."""

    REFUSED = "refused"


REFUSED = Refusal.REFUSED


async def authenticate(scope: Scope, send: Send, ring: KeyRing) -> Principal | Refusal | None:
    """The request's Principal; None on an open gateway or a public path; REFUSED after a 401."""
    if ring.empty or scope["path"] in PUBLIC_PATHS:
        return None
    presented = presented_key(scope["headers"])
    principal = ring.lookup(presented) if presented is not None else None
    if repeated_credentials(scope["headers"]):
        message = "Send one Authorization or x-api-key header, not several"
    elif principal is not None:
        expires = principal.expires_at
        if expires is None or time.time() < expires:
            return principal
        message = f"API key {principal.name!r} has expired"
    else:
        message = "Missing API key" if presented is None else "Invalid API key"
    body = unauthorized_body(scope["path"], message)
    await send_whole(send, 401, body, [JSON, (b"www-authenticate", b"Bearer")])
    return REFUSED


def is_admin_write(scope: Scope) -> bool:
    """Operator actions (load, unload, ...): any /admin/ request that is not a read."""
    return scope["path"].startswith("/admin/") and scope["method"] not in ("GET", "HEAD")


class KeyMiddleware:
    """The key check for every route outside the fast lane; admin writes need an admin key.

    The principal is left in the request's state (`request.state.principal`).
    """

    def __init__(self, app: ASGIApp, ring: Callable[[], KeyRing]) -> None:
        self.app = app
        self.ring = ring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            principal = await authenticate(scope, send, self.ring())
            if principal is REFUSED:
                return
            if principal is not None:
                if not principal.admin and is_admin_write(scope):
                    err = PermissionDenied(f"API key {principal.name!r} is not an admin key")
                    await send_whole(send, 403, json.dumps(err.to_openai()).encode(), [JSON])
                    return
                scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class Ticket:
    """One request of one key: admitted against its limits once, finished once."""

    __slots__ = ("book", "clock", "dialect", "model", "principal", "reserved", "state")

    def __init__(self, principal: Principal, book: UsageBook, clock: Clock, dialect: str) -> None:
        self.principal = principal
        self.book = book
        self.clock = clock
        self.dialect = dialect
        self.model = ""
        self.reserved = 0
        self.state = 0  # 0 new, 1 admitted, 2 finished

    def admit(self, model_id: str, body_bytes: int) -> None:
        """403 when the key may not use `model_id`; 429 when one of its limits is reached."""
        self.model = model_id
        principal = self.principal
        if not principal.may_use(model_id):
            raise model_denied(principal, model_id)
        quota = principal.quota
        if quota.limited:
            self.reserved = quota.take(estimate_prompt_tokens(body_bytes), self.clock())
        else:
            quota.in_flight += 1
        self.state = 1

    def finish(
        self,
        neuron: str | None,
        status: int | str,
        stats: ResponseStats | None,
        duration_s: float = 0.0,
    ) -> None:
        if self.state == 2:
            return
        admitted = self.state == 1
        self.state = 2
        prompt = completion = cached = 0
        if stats is not None:
            prompt = stats.prompt_tokens or 0
            completion = stats.completion_tokens or 0
            cached = stats.cached_tokens or 0
        principal = self.principal
        if admitted:
            principal.quota.settle(self.reserved, prompt + completion, self.clock)
        book = self.book
        now = time.time()
        status_text = status if isinstance(status, str) else str(status)
        if book.listeners:
            record = UsageRecord(
                now,
                self.principal.name,
                self.model,
                neuron or "",
                self.dialect,
                status_text,
                prompt,
                completion,
                cached,
                duration_s,
            )
            book.record(record)
        else:
            book.count(
                now,
                principal.name,
                self.model,
                status_text,
                prompt,
                completion,
                cached,
                duration_s,
            )

    def close(self) -> None:
        """The response is over: settle a ticket its meter never finished (client gone)."""
        if self.state != 2:
            self.finish(None, "client_closed", None)


def ticket_for(
    principal: Principal | None, book: UsageBook, clock: Clock, path: str
) -> Ticket | None:
    if principal is None:
        return None
    return Ticket(principal, book, clock, dialect_of(path))


class _Metered(Protocol):
    usage: UsageBook
    clock: Clock


def request_ticket(gw: _Metered, request: Request) -> Ticket | None:
    """The ticket of a request that came through `KeyMiddleware` (the starlette routes)."""
    principal = request.scope.get("state", {}).get("principal")
    return ticket_for(principal, gw.usage, gw.clock, request.url.path)


def check_model_access(request: Request, model_id: str) -> None:
    """403 when the request's key may not use `model_id` (routes outside the fast lane)."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is not None and not principal.may_use(model_id):
        raise model_denied(principal, model_id)


def model_denied(principal: Principal, model_id: str) -> PermissionDenied:
    return PermissionDenied(
        f"API key {principal.name!r} may not use model {model_id!r}", param="model"
    )


def dialect_of(path: str) -> str:
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1/responses"):
        return "responses"
    return "openai"


def principal_json(ring: KeyRing) -> list[dict[str, Any]]:
    return [p.to_json() for p in ring.names()]
