"""One exception tree for all of helexa.

    HelexaError
    ├── ConfigError                 a fleet.toml / models.toml / neuron.toml problem
    │     └── ConfigErrors          several ConfigError at once (a file is checked whole)
    ├── APIError                    an error with an HTTP status and a wire type/code
    │     ├── BadRequest            400 invalid_request_error
    │     │     └── ContextLengthExceeded   400 context_length_exceeded
    │     ├── Unauthorized          401 authentication_error
    │     ├── PermissionDenied      403 permission_error (a key's role or models forbid it)
    │     ├── RateLimited           429 rate_limit_error (a key's limit), retryable
    │     ├── PayloadTooLarge       413 request_too_large (over max_body_mb)
    │     ├── UnsupportedMediaType  415 unsupported_media_type (a body that is not JSON)
    │     ├── ModelNotFound         404 model_not_found (unknown to the catalogue / no weights)
    │     ├── ModelNotLoaded        404 model_not_loaded (neuron does not hold it)
    │     ├── Overloaded            503 overloaded (admission queue full / timed out), retryable
    │     ├── ModelUnloading        503 model_unloading, retryable
    │     ├── InsufficientMemory    507 insufficient_memory
    │     ├── LoadFailed            500 load_failed
    │     ├── GenerationFailed      500 generation_failed (a forward pass raised)
    │     ├── NoFeasibleNeuron      503 no_feasible_neuron, retryable
    │     ├── UpstreamError         502 upstream_error (a neuron failed)
    │     └── UpstreamTimeout       504 upstream_timeout
    ├── ReconcileError              plan/apply could not do what it was asked
    │     ├── PlanFileError         a saved plan file that cannot be read as a plan
    │     ├── ActionFailed          an action's precondition failed, or its neuron call did
    │     └── LockHeld              another writer holds the reconcile lock
    │                               (defined in helexa.reconcile.lock: it carries the holder)
    └── DeployError                 SSH / host operation failed
          └── HostKeyError          unknown or changed host key

APIError carries everything needed to render it in any dialect
(`status`, `type`, `code`, `param`, `retry_after`); the rendering itself
lives with each dialect's wire code, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class HelexaError(Exception):
    """Base of every error helexa raises on purpose."""


@dataclass(frozen=True)
class ConfigLocation:
    file: Path | None
    line: int | None
    key: str | None

    def __str__(self) -> str:
        where = str(self.file) if self.file else "<config>"
        if self.line is not None:
            where += f":{self.line}"
        if self.key:
            where += f": {self.key}"
        return where


class ConfigError(HelexaError):
    """A configuration problem, located by file, line and key where known."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.location = ConfigLocation(Path(file) if file else None, line, key)
        super().__init__(f"{self.location}: {message}")

    @property
    def file(self) -> Path | None:
        return self.location.file

    @property
    def line(self) -> int | None:
        return self.location.line

    @property
    def key(self) -> str | None:
        return self.location.key


class ConfigErrors(ConfigError):
    """Several configuration errors found in one check."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(
            "\n".join(str(e) for e in errors),
            file=first.file,
            line=first.line,
            key=first.key,
        )

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class APIError(HelexaError):
    """An error that maps onto an HTTP response."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if retry_after is None and self.retryable:
            retry_after = 1.0
        self.retry_after = retry_after

    def to_openai(self) -> dict[str, object]:
        """The OpenAI error envelope (used by the neuron and the OpenAI routes)."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class BadRequest(APIError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class NoSuchRoute(APIError):
    """starlette's 404/405 for a path or method no route serves, as an API error."""

    type = "invalid_request_error"

    @classmethod
    def of(cls, status: int, detail: str) -> NoSuchRoute:
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        return cls(detail, status=status, code=code)


class ContextLengthExceeded(BadRequest):
    code = "context_length_exceeded"


class Unauthorized(APIError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(APIError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class RateLimited(APIError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    retryable = True


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(APIError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class ModelNotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class ModelNotLoaded(APIError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_loaded"


class Overloaded(APIError):
    status = 503
    type = "overloaded_error"
    code = "overloaded"
    retryable = True


class ModelUnloading(APIError):
    status = 503
    type = "overloaded_error"
    code = "model_unloading"
    retryable = True


class InsufficientMemory(APIError):
    status = 507
    type = "server_error"
    code = "insufficient_memory"


class LoadFailed(APIError):
    status = 500
    type = "server_error"
    code = "load_failed"


class GenerationFailed(APIError):
    status = 500
    type = "server_error"
    code = "generation_failed"


class NoFeasibleNeuron(APIError):
    status = 503
    type = "overloaded_error"
    code = "no_feasible_neuron"
    retryable = True


class UpstreamError(APIError):
    status = 502
    type = "api_error"
    code = "upstream_error"


class UpstreamTimeout(APIError):
    status = 504
    type = "api_error"
    code = "upstream_timeout"


class ReconcileError(HelexaError):
    """plan/apply could not do what it was asked."""


class PlanFileError(ReconcileError):
    """A saved plan file that cannot be read as a plan."""


class ActionFailed(ReconcileError):
    """An action's precondition did not hold, or its neuron call failed."""


class DeployError(HelexaError):
    """A host operation (SSH, install, systemd) failed."""


class HostKeyError(DeployError):
    """The host key is unknown (first contact) or does not match known_hosts."""
