"""The service's error families. Library errors are translated into these at the boundary.

Each error knows its HTTP status and its OpenAI error `type`/`code`, so the API layer maps any of
them to the OpenAI error envelope, and a stream ends with one `error` event carrying the same.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """Root of every error the service raises on purpose."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def headers(self) -> dict[str, str]:
        """Response headers that go with the error (when to try again, how to authenticate)."""
        return {"Retry-After": "1"} if self.status == 503 else {}

    def envelope(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error envelope for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(SwitchboardError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class NotFound(SwitchboardError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Unauthenticated(SwitchboardError):
    """No credentials, or credentials that do not check out."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(SwitchboardError):
    """Authenticated, but the caller's role does not allow this."""

    status = 403
    type = "permission_error"
    code = "forbidden"


class RateLimited(SwitchboardError):
    """Over a rate limit; `retry_after` says in how many seconds to try again."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class PayloadTooLarge(SwitchboardError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class BackendError(SwitchboardError):
    """A model backend failed; the family of every backend failure."""

    status = 502
    type = "backend_error"
    code = "backend_error"


class BackendUnavailable(BackendError):
    """No backend could serve the call before its first token (all failed or circuits open)."""

    status = 503
    code = "backend_unavailable"


class BackendTimeout(BackendError):
    status = 504
    code = "backend_timeout"


class BackendRejected(BackendError):
    """The backend refused the request itself (a 4xx other than 429): retrying will not help."""

    code = "backend_rejected"


class StreamInterrupted(BackendError):
    """The backend failed after the first token; the partial answer cannot be failed over."""

    code = "stream_interrupted"


class LocalBackendError(SwitchboardError):
    """The bundled llama.cpp server could not be started."""

    code = "local_backend_failed"
