"""One structured log line per request, which is also a CloudWatch metrics record.

Each request (HTTP or direct invocation) ends with one JSON line on stdout: request id, developer
id (never the key), route and operation, status, error code, latency and the number of DynamoDB
calls it made. The same line carries CloudWatch's embedded metric format (the `_aws` member), so
CloudWatch Logs turns it into the metrics `requests`, `errors` (5xx), `client_errors` (4xx) and
`latency` per operation and for the whole service, with no agent, no API call and no extra
import (docs/observability.md, which also says why not Powertools).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

NAMESPACE_VARIABLE = "SESSIONS_METRICS_NAMESPACE"
DEFAULT_NAMESPACE = "SessionsService"
SERVICE = "sessions"
METRICS = (
    {"Name": "requests", "Unit": "Count"},
    {"Name": "errors", "Unit": "Count"},
    {"Name": "client_errors", "Unit": "Count"},
    {"Name": "latency", "Unit": "Milliseconds"},
)


@dataclass
class Measure:
    """What one request did, filled in as it goes."""

    request_id: str
    via: str  # "http" or "invoke"
    route: str | None = None  # "GET /sessions/{session_id}"; None for an invocation
    operation: str | None = None  # "sessions.get"; None for an unknown route
    developer_id: str | None = None  # once authenticated (HTTP) or named (invocation)
    dynamodb_calls: int = 0
    started: float = field(default_factory=time.perf_counter)


_current: contextvars.ContextVar[Measure | None] = contextvars.ContextVar("measure", default=None)
_out: list[TextIO] = []  # where lines go when not stdout (tests)


class _RequestIdFilter(logging.Filter):
    """Every line of the "sessions" logger carries the request's id, as its answer and its
    request line do, over HTTP and by invocation alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        measure = _current.get()
        record.request_id = measure.request_id if measure is not None else "-"
        return True


logging.getLogger("sessions").addFilter(_RequestIdFilter())


def begin(request_id: str, via: str, route: str | None = None, operation: str | None = None) -> Measure:
    measure = Measure(request_id, via, route, operation)
    _current.set(measure)
    return measure


def current() -> Measure | None:
    return _current.get()


def finish(measure: Measure, status: int, error_code: str | None = None) -> dict[str, Any]:
    """Write the request's line and return it."""
    _current.set(None)
    latency = round((time.perf_counter() - measure.started) * 1000, 3)
    record = {
        "level": "ERROR" if status >= 500 else "INFO",
        "message": "request",
        "request_id": measure.request_id,
        "via": measure.via,
        "route": measure.route,
        "operation": measure.operation or "unknown",
        "developer_id": measure.developer_id,
        "status": status,
        "error_code": error_code,
        "dynamodb_calls": measure.dynamodb_calls,
        "service": SERVICE,
        # the metric values, named as in METRICS
        "requests": 1,
        "errors": int(status >= 500),
        "client_errors": int(400 <= status < 500),
        "latency": latency,
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": os.environ.get(NAMESPACE_VARIABLE) or DEFAULT_NAMESPACE,
                    # per operation, and the service as a whole
                    "Dimensions": [["service", "operation"], ["service"]],
                    "Metrics": list(METRICS),
                }
            ],
        },
    }
    stream = _out[-1] if _out else sys.stdout
    stream.write(json.dumps(record, separators=(",", ":")) + "\n")
    stream.flush()
    return record


def count_dynamodb_call(**_: Any) -> None:
    """botocore's before-call hook: once per API call (botocore's own retries are not counted)."""
    measure = _current.get()
    if measure is not None:
        measure.dynamodb_calls += 1


def instrument(client: Any) -> None:
    """Count this client's calls into the current request's measure (idempotent per client)."""
    client.meta.events.register(
        "before-call.dynamodb", count_dynamodb_call, unique_id="sessions-telemetry-dynamodb-calls"
    )


class capture:
    """`with capture(stream):` sends the lines to `stream` instead of stdout."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __enter__(self) -> TextIO:
        _out.append(self.stream)
        return self.stream

    def __exit__(self, *_: Any) -> None:
        _out.remove(self.stream)
