"""What a request is and what its answer means, once for the sync and the async client: a Call
describes the request, `outcome` reads an answer into a value, a retry, or an exception.

Retries only where the API says a retry is safe:
- 503 with Retry-After (throttled, a cascade unfinished): nothing was written, so any request is
  sent again after the time it names (at most `max_wait`), except `model_provider_not_configured`,
  which no wait changes;
- `write_outcome_unknown` (a 503 whose write may have happened) and a connection that failed
  before an answer: sent again only when a repeat cannot do the work twice, that is a GET, a PUT,
  a DELETE, or a request with its Idempotency-Key (which every creating call here carries).
Everything else raises at once.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, error_for

REPEATABLE_METHODS = frozenset({"GET", "PUT", "DELETE"})
NEVER_RETRIED = frozenset({"model_provider_not_configured"})


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None  # None: no body
    model: Any = None  # what the answer is read into (a pydantic model); None: the JSON as it is
    if_match: str | None = None
    idempotency_key: str | None = None

    @property
    def repeatable(self) -> bool:
        """Sending it twice does the work once."""
        return self.method in REPEATABLE_METHODS or self.idempotency_key is not None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.if_match is not None:
            headers["If-Match"] = self.if_match
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        return headers

    def query(self) -> dict[str, str]:
        """The query string: None left out, booleans and numbers as the API reads them, objects
        (metadata_filter) as JSON."""
        out = {}
        for name, value in self.params.items():
            if value is None:
                continue
            if isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, (dict, list)):
                out[name] = json.dumps(value, separators=(",", ":"))
            else:
                out[name] = str(value)
        return out


def new_idempotency_key() -> str:
    return f"sc-{uuid.uuid4()}"


@dataclass(frozen=True)
class Retry:
    seconds: float
    error: Exception


@dataclass(frozen=True)
class Policy:
    attempts: int = 4  # sends of one call at most
    max_wait: float = 20.0  # seconds: a longer Retry-After is not waited for (the error is raised)
    backoff: float = 0.25  # first wait after a failed connection, doubling, full jitter


def outcome(call: Call, status: int, headers: Any, body: Any, attempt: int, policy: Policy) -> Any:
    """The value of a 2xx answer; a Retry; or raise the ApiError."""
    if status < 400:
        if call.model is None:
            return body
        value = call.model.model_validate(body)
        if "etag" in headers:
            value._etag = headers["etag"]
        return value
    retry_after = _seconds(headers.get("retry-after"))
    error = error_for(status, body, headers.get("x-request-id"), retry_after)
    if attempt + 1 >= policy.attempts or not _retryable(call, error):
        raise error
    wait = retry_after if retry_after is not None else pause(attempt, policy)
    if wait > policy.max_wait:
        raise error
    return Retry(wait, error)


def after_transport_error(call: Call, error: Exception, attempt: int, policy: Policy) -> Retry:
    """A connection that failed before an answer: resent only if repeating it is harmless."""
    if attempt + 1 >= policy.attempts or not call.repeatable:
        raise error
    return Retry(pause(attempt, policy), error)


def pause(attempt: int, policy: Policy) -> float:
    return random.uniform(0, policy.backoff * 2**attempt)


def _retryable(call: Call, error: ApiError) -> bool:
    if error.status != 503 or error.code in NEVER_RETRIED:
        return False
    if error.code == "write_outcome_unknown":
        return call.repeatable
    return True


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
