"""The table's stream as Lambda delivers it (a DynamoDB Streams event), to rules/cascades.py."""

from __future__ import annotations

from typing import Any

from chalicelib.rules import cascades
from chalicelib.store import Store
from chalicelib.store.codec import deserialize

# How DynamoDB's TTL signs the removals it makes (AWS: "Working with expired items and TTL").
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def changes_of(event: dict[str, Any]) -> list[cascades.Change]:
    changes = []
    for record in event.get("Records", []):
        data = record.get("dynamodb", {})
        keys = data.get("Keys", {})
        if "pk" not in keys or "sk" not in keys:
            continue
        by_ttl = record.get("userIdentity") == TTL_IDENTITY
        image = data.get("NewImage") or data.get("OldImage") or {}
        changes.append(
            cascades.Change(
                event=record.get("eventName", ""),
                pk=keys["pk"]["S"],
                sk=keys["sk"]["S"],
                # only a TTL removal's old image is read: a batch of appends costs no decoding
                old=_image(data.get("OldImage")) if by_ttl else None,
                by_ttl=by_ttl,
                fork=image.get("fork") == {"BOOL": True},
            )
        )
    return changes


def _image(typed: dict[str, Any] | None) -> dict[str, Any] | None:
    """An item image as plain values. DynamoDB Local's stream renders an empty map (a session's
    `"metadata": {}`) as a bare `{}`, which no type names: such a value is left out, as absent."""
    if typed is None:
        return None
    try:
        return deserialize(typed)
    except TypeError:
        return deserialize({name: value for name, value in typed.items() if value})


def handle(store: Store, event: dict[str, Any]) -> int:
    """Apply a batch; an exception fails it, and the event source retries it (then bisects it, and
    at last sends it to the on-failure queue)."""
    return cascades.apply(store, changes_of(event))
