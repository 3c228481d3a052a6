"""Conversation history: one item per message in its session's partition (chalicelib/store.py).

Order is total and stable: a message's position is `<created_at>#<append>#<n>`, fixed when it is
written. An append reads the newest position first and stamps its messages strictly after it
(chalicelib/clock.after), so a writer's next append always lands after its last one, whatever the
clocks of the Lambdas involved. Concurrent appends never collide: each Put is conditional on its
own fresh key. Cost per message is the same at message 10 and at message 100,000.
"""
from __future__ import annotations

import hashlib
import time
from itertools import islice
from typing import Any

from . import clock, cursor, models
from .errors import BadRequest, DeletionInProgress, NotFound
from .service import SESSIONS, deadline_after, existing, parse_body, int_param, refuse_unknown_params
from .idempotency import Receipt
from .store import MissingRecord, Store, message_positions

PAGE_DEFAULT, PAGE_MAX = 100, 1000
OFFSET_MAX = 10_000      # offsets are read through; past this, page with the cursor


def get(store: Store, developer: str, session_id: str, params: dict[str, str]) -> dict[str, Any]:
    """One page of a session's history: oldest first, or newest first with `order=desc` ("the
    last N turns" in one query); `next_cursor` continues it while more remain."""
    refuse_unknown_params(params, {"limit", "offset", "cursor", "order"})
    limit = int_param(params, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
    offset = int_param(params, "offset", 0, 0, OFFSET_MAX)
    order = params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise BadRequest(f"order must be asc or desc; got {order!r}")
    digest = hashlib.sha256(f"history|{session_id}|{order}".encode()).hexdigest()[:32]
    after = None
    if "cursor" in params:
        if offset:
            raise BadRequest("pass either cursor or offset, not both")
        after = cursor.decode(params["cursor"], developer, digest)
    existing(store, SESSIONS, developer, session_id)
    # One item past the page tells whether another page follows.
    read = store.messages(developer, session_id, descending=order == "desc", after=after,
                          page_size=min(offset + limit + 1, PAGE_MAX + 1))
    page = list(islice(read, offset, offset + limit + 1))
    more = len(page) > limit
    page = page[:limit]
    return {"items": [models.Message.model_validate(message) for _, message in page],
            "next_cursor": cursor.encode(developer, digest, page[-1][0]) if more else None}


def append(store: Store, developer: str, session_id: str, body: dict[str, Any],
           receipt: Receipt | None = None) -> dict[str, Any]:
    """Append messages in the order given, atomically (all stored or none)."""
    parsed = parse_body(models.HistoryAppend, body)
    stamped = stamp(store, developer, session_id, [message.model_dump() for message in parsed.messages])
    write(store, developer, session_id, stamped, receipt and receipt.record(
        201, positions=message_positions(stamped), session_id=session_id))
    return {"items": [models.Message.model_validate(message) for message in stamped]}


def append_messages(store: Store, developer: str, session_id: str,
                    messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store validated messages (role, content, name) after the session's newest one; the
    stored messages, with their ids and created_at."""
    stamped = stamp(store, developer, session_id, messages)
    write(store, developer, session_id, stamped)
    return stamped


def stamp(store: Store, developer: str, session_id: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with their ids and a `created_at` strictly after the session's newest."""
    if not clock.is_uuid(session_id):
        raise NotFound(f"session {session_id} not found")
    newest = store.last_message_time(developer, session_id)
    timestamp = clock.after(newest) if newest else clock.now()
    return [{"id": clock.new_id(), "role": m["role"], "content": m["content"], "name": m.get("name"),
             "created_at": timestamp} for m in messages]


def write(store: Store, developer: str, session_id: str, stamped: list[dict[str, Any]],
          receipt: dict[str, Any] | None = None) -> None:
    """Store stamped messages in one transaction (with the request's idempotency receipt)."""
    try:
        store.append_messages(developer, session_id, stamped, receipt)
    except MissingRecord:
        raise NotFound(f"session {session_id} not found") from None


def clear(store: Store, developer: str, session_id: str,
          budget_seconds: float | None = None) -> models.Deleted:
    """Clear a session's history, the session staying. The summary goes first (a summary of a
    cleared history must never outlive it), then the messages in batches until none is left, so
    a retry after an interruption (or a 503 past the budget) finishes the job."""
    deadline = deadline_after(budget_seconds)
    session = existing(store, SESSIONS, developer, session_id)
    if session.get("summary") is not None or session.get("summary_until") is not None:
        while not store.write_summary(developer, session_id, session["version"], None, None):
            session = existing(store, SESSIONS, developer, session_id)
    while store.delete_history_batch(developer, session_id):
        if time.monotonic() > deadline:
            raise DeletionInProgress(f"clearing the history of session {session_id} is under way; "
                                     "repeat the DELETE to continue it")
    return models.Deleted(id=session_id, deleted_at=clock.now())
