"""The API's errors as exceptions: every answer of 400 or more is an ApiError carrying the API's
error code (`{"error": {"code", "message", "details"}}`), its status and the request's id; the
subclass says what kind of failure it is, so callers catch what they can act on."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer of the sessions service."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.request_id = request_id
        self.retry_after = retry_after  # seconds, from Retry-After, where the API sent one


class BadRequest(ApiError):
    """400: malformed JSON, a bad or unknown query parameter, a bad cursor."""


class Unauthorized(ApiError):
    """401: no key, or one no developer holds."""


class NotFound(ApiError):
    """404: an absent id (or another developer's)."""


class Conflict(ApiError):
    """409: changes won every retry of the server, or the history is not as the request expects."""


class HistoryMoved(Conflict):
    """409 history_moved: an append's `after` is no longer the last message."""


class SessionEnded(Conflict):
    """409 session_ended: the session takes no more messages."""


class ToolCallsPending(Conflict):
    """409 tool_calls_pending / tool_result_required: a tool call and its results stay together."""


class PreconditionFailed(ApiError):
    """412: If-Match named a version the resource has moved past; nothing changed."""


class ValidationFailed(ApiError):
    """422: the body breaks the schema (`details` names each field), or an Idempotency-Key reused."""


class ProviderFailed(ApiError):
    """502 / 504: the model provider failed or timed out; nothing was stored."""


class Unavailable(ApiError):
    """503: throttled, a cascading delete unfinished, or no model provider; retry after retry_after."""


class WriteOutcomeUnknown(Unavailable):
    """503 write_outcome_unknown: the write may or may not have happened. Resending it is safe only
    with the same Idempotency-Key (which this client sends on every creating request)."""


_BY_CODE: dict[str, type[ApiError]] = {
    "history_moved": HistoryMoved,
    "session_ended": SessionEnded,
    "tool_calls_pending": ToolCallsPending,
    "tool_result_required": ToolCallsPending,
    "write_outcome_unknown": WriteOutcomeUnknown,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: ValidationFailed,
    502: ProviderFailed,
    503: Unavailable,
    504: ProviderFailed,
}


def error_for(status: int, body: Any, request_id: str | None = None, retry_after: float | None = None) -> ApiError:
    """The exception for an error answer; a body not in the API's shape (a proxy's) keeps its text."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": "http_error", "message": str(body)[:500]}
    code = str(error.get("code", "http_error"))
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status) or ApiError
    return kind(status, code, str(error.get("message", "")), error.get("details"), request_id, retry_after)
