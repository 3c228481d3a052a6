"""The table's stream as Lambda delivers it (a DynamoDB Streams event), to rules/cascades.py."""

from __future__ import annotations

from typing import Any

from chalicelib.store import Store
from chalicelib.store.codec import deserialize

# chalicelib.rules.cascades (and the rules under it) is imported when a batch comes, not by
# `import app`: the API's cold start does not pay for the stream's code.

# How DynamoDB's TTL signs the removals it makes (AWS: "Working with expired items and TTL").
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
FUNCTION_NAME = "cascades"  # app.py's Lambda function for the stream (infra/stack.py subscribes it)
# The only changes worth an invocation (Lambda's event filtering, infra/stack.py): a purge marker's
# insert, and TTL's removals. Appends and edits never wake the function.
EVENT_FILTERS = (
    {"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"suffix": "#purge"}]}}}},
    {
        "eventName": ["REMOVE"],
        "userIdentity": {"type": [TTL_IDENTITY["type"]], "principalId": [TTL_IDENTITY["principalId"]]},
    },
)


def changes_of(event: dict[str, Any]) -> list[Any]:
    from chalicelib.rules import cascades

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


def cascades(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    """The Lambda entry point: deployed as `app.cascades` (the handler string is this name, so
    app.py binds it under the same one); the process's store, one batch."""
    from chalicelib.store import get_store

    return {"started": handle(get_store(), event)}


def handle(store: Store, event: dict[str, Any]) -> int:
    """Apply a batch; an exception fails it, and the event source retries it (then bisects it, and
    at last sends it to the on-failure queue)."""
    from chalicelib.rules import cascades

    return cascades.apply(store, changes_of(event))
