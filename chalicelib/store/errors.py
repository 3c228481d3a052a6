"""The store's named outcomes. Above the store nothing sees a botocore exception: DynamoDB's
failures arrive as StoreUnavailable ("not now") or StoreFailed ("wrong": our own bug, or an
operator's missing table), translated in store/client.py."""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base of the store's named outcomes."""


class MissingRecord(StoreError):
    """A record a write depends on is absent (or was deleted meanwhile)."""

    def __init__(self, kind: str, record_id: str) -> None:
        super().__init__(f"{kind} {record_id} not found")
        self.kind = kind
        self.record_id = record_id


class VersionConflict(StoreError):
    """The record changed between our read and our conditional write. `current` is the record
    as the failed condition saw it, when DynamoDB handed it back (None: read it again)."""

    def __init__(self, current: dict[str, Any] | None = None) -> None:
        super().__init__("the record changed meanwhile")
        self.current = current


class KeyTaken(StoreError):
    """An API key (by hash) is registered already, to `owner`."""

    def __init__(self, owner: str | None) -> None:
        super().__init__(f"the key is registered already, to developer {owner!r}")
        self.owner = owner


class ReceiptTaken(StoreError):
    """An idempotency receipt with this key was written first by another request."""


class StoreUnavailable(StoreError):
    """DynamoDB said "not now" past every retry (throttling, conflicts, its own 5xx, timeouts,
    dropped connections, items left unprocessed). `outcome_unknown`: a write of this request was
    sent and never answered for sure, so it may have been applied."""

    def __init__(self, message: str, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class StoreFailed(StoreError):
    """DynamoDB refused a call as wrong: a bug of ours (a malformed call), or, for an operator's
    tool, a table that does not exist. `code` is DynamoDB's error code, `operation` the call's."""

    def __init__(self, message: str, code: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation
