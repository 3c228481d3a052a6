"""Ids and timestamps: UUIDv4 ids (the SDK asserts version 4) and RFC 3339 UTC with microseconds."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def new_id() -> str:
    return str(uuid.uuid4())


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False


def canonical_id(value: str) -> str:
    """A UUID in lower case, as ids are stored and answered (UUIDs are case-insensitive: RFC 9562);
    anything else as it is, to be refused or not found as it is."""
    return value.lower() if is_uuid(value) else value


_lock = threading.Lock()
_last = ""


def _next_microsecond(timestamp: str) -> str:
    moment = datetime.strptime(timestamp, _FORMAT).replace(tzinfo=UTC)
    return (moment + timedelta(microseconds=1)).strftime(_FORMAT)


def now() -> str:
    """The current time, strictly increasing within this process: two writes never share a
    timestamp here, so sort keys built from it keep the order they were made in."""
    global _last
    with _lock:
        current = datetime.now(UTC).strftime(_FORMAT)
        _last = current if current > _last else _next_microsecond(_last)
        return _last


def after(previous: str) -> str:
    """Now, or one microsecond after `previous` if this clock has not moved past it.

    Timestamps sort as strings (fixed width), so `updated_at` always moves forward even when a
    Lambda's clock lags the one that wrote `previous`."""
    current = now()
    return current if current > previous else _next_microsecond(previous)


def epoch_seconds() -> float:
    """Now in seconds since the epoch, as expiries (the table's TTL attribute) count it. Tests move
    it with `monkeypatch.setattr(clock, "epoch_seconds", ...)` rather than sleeping."""
    return time.time()


def expired(expires_at: float | int | None) -> bool:
    """Whether an expiry (epoch seconds) has come: a record is gone from that second on."""
    return expires_at is not None and int(expires_at) <= epoch_seconds()
