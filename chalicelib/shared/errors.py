"""The one error shape of the service, the one table of error codes and their HTTP statuses, and
the named errors the rules raise.

Every failure a caller can see is a `ServiceError`; it renders as
`{"error": {"code", "message", "details"}}` with the status its code has in STATUSES, whether the
call came over HTTP or as a direct Lambda invocation (web/invoke.py). The rules raise these by
name and never spell a status; the edge (web/), API Gateway's own answers
(infra/gateway_responses.py), make run's server (infra/local_gateway.py) and the OpenAPI document
all read statuses from this one table.
"""

from __future__ import annotations

from typing import Any

# Every error code any part of the service answers, with its status. For a status answered
# without a code of ours (Chalice's, http.server's), the first code listed for it is used.
STATUSES: dict[str, int] = {
    "bad_request": 400,
    "client_error": 400,  # API Gateway's other 4xx (their own status stays)
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "conflict": 409,
    "history_moved": 409,
    "session_ended": 409,
    "tool_calls_pending": 409,
    "tool_result_required": 409,
    "precondition_failed": 412,
    "payload_too_large": 413,
    "request_uri_too_long": 414,
    "unsupported_media_type": 415,
    "validation_error": 422,
    "template_error": 422,
    "context_over_budget": 422,
    "too_many_requests": 429,
    "request_header_fields_too_large": 431,
    "internal_error": 500,
    "not_implemented": 501,
    "model_provider_failed": 502,
    "service_unavailable": 503,
    "write_outcome_unknown": 503,
    "deletion_in_progress": 503,
    "model_provider_not_configured": 503,
    "model_provider_timeout": 504,
    "gateway_timeout": 504,
    "http_version_not_supported": 505,
}


def code_for(status: int) -> str:
    """The code of an answer that has only a status (Chalice's own, http.server's)."""
    return next(
        (code for code, known in STATUSES.items() if known == status),
        "client_error" if status < 500 else "internal_error",
    )


class ServiceError(Exception):
    code = "internal_error"

    def __init__(
        self, message: str, details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return STATUSES[self.code]

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


class InternalError(ServiceError):
    """Our own bug, logged with its traceback; the caller learns nothing of it but the request id."""

    code = "internal_error"

    def __init__(self) -> None:
        super().__init__("internal error; it has been logged")


class BadRequest(ServiceError):
    """The request itself cannot be read: malformed JSON, bad query parameters."""

    code = "bad_request"


class Unauthorized(ServiceError):
    """No key, or one we do not know. The answer names the scheme (RFC 6750: WWW-Authenticate),
    and for a key that was sent, says it is not a valid one."""

    code = "unauthorized"

    def __init__(self, message: str, key_sent: bool = False) -> None:
        challenge = 'Bearer realm="sessions"' + (', error="invalid_token"' if key_sent else "")
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    """A concurrent change won every retry; the caller may retry."""

    code = "conflict"


class HistoryMoved(ServiceError):
    """An append said which message it follows (`after`), and that is no longer the last one; nothing
    was stored. `details` name the last message now."""

    code = "history_moved"

    def __init__(self, session_id: str, expected: str | None, last: str | None, deleting: bool = False) -> None:
        now = f"the last message is now {last}" if last else "the history is now empty"
        if deleting:  # DELETE .../history/{id}?only_if_last=true
            said, field = (
                f"this delete was of the last message, {expected}, but {now}; nothing was removed",
                "only_if_last",
            )
        else:
            wanted = f"after message {expected}" if expected else "to an empty history"
            said, field = f"this append was to follow {wanted}, but {now}; nothing was stored", "after"
        super().__init__(
            f"session {session_id}: {said}",
            details=[{"field": field, "message": now, "type": "history_moved", "last_message_id": last}],
        )


class SessionEnded(ServiceError):
    """An append or a chat to a session that was ended (POST /sessions/{id}/end); nothing was
    stored. An ended session stays readable and listable, and cannot be made active again."""

    code = "session_ended"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id} has ended: it takes no more messages; nothing was stored. "
            "Fork it to continue the conversation in a new session"
        )


class ToolCallsPending(ServiceError):
    """Tool calls of the session await their results, and the append or chat is not (only) those
    results: nothing may come between a call and its last result, and a model is never sent a
    call without its results. Nothing was stored, and no model was called. `details` name the
    open calls."""

    code = "tool_calls_pending"

    def __init__(self, session_id: str, open_ids: list[str], field: str) -> None:
        listed = ", ".join(open_ids)
        super().__init__(
            f"session {session_id} has tool calls awaiting their results ({listed}): send those results "
            "(role tool, tool_call_id) first, all in one chat or in appends before it; or take the call "
            "back by deleting its assistant message or rewinding. Nothing was stored",
            details=[
                {
                    "field": field,
                    "message": f"tool calls awaiting results: {listed}",
                    "type": "tool_calls_pending",
                    "open_tool_calls": open_ids,
                }
            ],
        )


class ToolResultRequired(ServiceError):
    """Deleting this tool result would leave its call without a result while other messages
    follow: a result could then only land after them. Nothing was changed."""

    code = "tool_result_required"

    def __init__(self, message_id: str, call_id: str) -> None:
        super().__init__(
            f"message {message_id} is the result of tool call {call_id}, and messages follow it: without "
            "it the call would stay unanswered in the middle of the history. Delete the assistant message "
            "that made the call (its results go with it), or rewind to before it. Nothing was changed",
            details=[{"field": "message_id", "message": f"answers {call_id}", "type": "tool_result_required"}],
        )


class MethodNotAllowed(ServiceError):
    """A known path, a method it does not take; `allowed` goes out as the Allow header."""

    code = "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message, headers={"Allow": ", ".join(allowed)})


class PreconditionFailed(ServiceError):
    """If-Match named a version the resource has moved past; nothing was changed. The edge names
    `current_version` in the answer, as the ETag to send instead."""

    code = "precondition_failed"

    def __init__(self, message: str, current_version: int) -> None:
        super().__init__(message)
        self.current_version = current_version


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"


class ValidationFailed(ServiceError):
    """The body parsed but breaks the schema; `details` name each field."""

    code = "validation_error"


class Unavailable(ServiceError):
    """DynamoDB throttled or failed past every retry; nothing half-done remains, so the caller may
    retry after a moment."""

    code = "service_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class WriteOutcomeUnknown(ServiceError):
    """A write was sent and DynamoDB never answered it for sure (timeouts, dropped connections or
    its own 500s past every retry): it may have been applied. Not "retry": read first, or retry
    with the same Idempotency-Key."""

    code = "write_outcome_unknown"

    def __init__(self) -> None:
        super().__init__(
            "the database did not confirm the write, which may have been applied: read before "
            "sending it again, or send it again with the same Idempotency-Key, which makes that safe",
            headers={"Retry-After": "1"},
        )


class DeletionInProgress(ServiceError):
    """A cascading delete ran out of its time budget; retrying the DELETE continues it."""

    code = "deletion_in_progress"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class TemplateFailed(ServiceError):
    """A situation or instruction template would not parse or render in the sandbox."""

    code = "template_error"


class ContextOverBudget(ServiceError):
    """The session's context exceeds its token_budget and its context_overflow is null."""

    code = "context_over_budget"


class ProviderNotConfigured(ServiceError):
    code = "model_provider_not_configured"


class ProviderFailed(ServiceError):
    """The model provider answered with an error or something unreadable; nothing was stored."""

    code = "model_provider_failed"


class ProviderTimeout(ServiceError):
    """The model provider did not answer in time; nothing was stored."""

    code = "model_provider_timeout"
