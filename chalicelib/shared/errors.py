"""The one error shape of the service, and the named errors the service layer raises.

Every failure a caller can see is a `ServiceError`; it renders as
`{"error": {"code", "message", "details"}}` with `status`, whether the call came over HTTP or
as a direct Lambda invocation (chalicelib/web/invoke.py).
"""
from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


class InternalError(ServiceError):
    """Our own bug, logged with its traceback; the caller learns nothing of it but the request id."""
    status = 500
    code = "internal_error"

    def __init__(self) -> None:
        super().__init__("internal error; it has been logged")


class BadRequest(ServiceError):
    """The request itself cannot be read: malformed JSON, bad query parameters."""
    status = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    """No key, or one we do not know. The answer names the scheme (RFC 6750: WWW-Authenticate),
    and for a key that was sent, says it is not a valid one."""
    status = 401
    code = "unauthorized"

    def __init__(self, message: str, key_sent: bool = False) -> None:
        challenge = 'Bearer realm="sessions"' + (', error="invalid_token"' if key_sent else "")
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """A concurrent change won every retry; the caller may retry."""
    status = 409
    code = "conflict"


class MethodNotAllowed(ServiceError):
    """A known path, a method it does not take; `allowed` goes out as the Allow header."""
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message, headers={"Allow": ", ".join(allowed)})


class PreconditionFailed(ServiceError):
    """If-Match named a version the resource has moved past; nothing was changed."""
    status = 412
    code = "precondition_failed"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class ValidationFailed(ServiceError):
    """The body parsed but breaks the schema; `details` name each field."""
    status = 422
    code = "validation_error"


class Unavailable(ServiceError):
    """DynamoDB throttled or failed past every retry; nothing half-done remains, so the caller may
    retry after a moment."""
    status = 503
    code = "service_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class WriteOutcomeUnknown(ServiceError):
    """A write was sent and DynamoDB never answered it for sure (timeouts, dropped connections or
    its own 500s past every retry): it may have been applied. Not "retry": read first, or retry
    with the same Idempotency-Key."""
    status = 503
    code = "write_outcome_unknown"

    def __init__(self) -> None:
        super().__init__("the database did not confirm the write, which may have been applied: read before "
                         "sending it again, or send it again with the same Idempotency-Key, which makes that safe",
                         headers={"Retry-After": "1"})


class DeletionInProgress(ServiceError):
    """A cascading delete ran out of its time budget; retrying the DELETE continues it."""
    status = 503
    code = "deletion_in_progress"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class TemplateFailed(ServiceError):
    """A situation or instruction template would not parse or render in the sandbox."""
    status = 422
    code = "template_error"


class ContextOverBudget(ServiceError):
    """The session's context exceeds its token_budget and its context_overflow is null."""
    status = 422
    code = "context_over_budget"


class ProviderNotConfigured(ServiceError):
    status = 503
    code = "model_provider_not_configured"


class ProviderFailed(ServiceError):
    """The model provider answered with an error or something unreadable; nothing was stored."""
    status = 502
    code = "model_provider_failed"


class ProviderTimeout(ServiceError):
    """The model provider did not answer in time; nothing was stored."""
    status = 504
    code = "model_provider_timeout"
