"""Forking a session ("try another path"): a new session with the original's agent, user,
situation and settings, its metadata merged with the given, and a copy of its history up to and
including a message (all of it by default): the same order and times, new ids. The original is
unchanged.

A fork is never visible half-made: the copy goes into the partition of a session that does not
exist yet (GET is a 404, no list names it), under a purge marker, and one transaction then creates
the session with its index entries and removes the marker. A fork that does not finish leaves only
the marker and the copied messages, which the operators' sweep (or a parent's cascade) removes; the
consistency check counts them as pending, never as orphans. docs/api.md, "Editing the history".
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.rules import models, toolcalls, validation
from chalicelib.rules.deletes import deadline_after
from chalicelib.rules.history import find_message
from chalicelib.rules.idempotency import Receipt
from chalicelib.rules.kinds import SESSIONS
from chalicelib.rules.records import existing, merged_metadata
from chalicelib.shared import clock
from chalicelib.shared.errors import NotFound, Unavailable
from chalicelib.store import HIDDEN, LAST_MESSAGE_ID, LAST_POSITION, OPEN_CALLS, POSITIONAL_IDS, MissingRecord, Store
from chalicelib.store.keys import message_ids, message_positions

# What a fork does not take from the original: what makes a record itself, its history's state,
# and its metadata (merged) and summary (kept only when it covers no message left out).
NOT_COPIED = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "version",
        "metadata",
        "summary",
        "summary_until",
        LAST_POSITION,
        LAST_MESSAGE_ID,
        POSITIONAL_IDS,
        OPEN_CALLS,
        HIDDEN,
        "status",  # a fork of an ended session is a new, active one
        "ended_at",
    }
)
COPY_BATCH = 200  # messages written per round of the copy (8 BatchWriteItem calls)


def fork(
    store: Store,
    developer: str,
    session_id: str,
    body: dict[str, Any],
    receipt: Receipt | None = None,
    budget_seconds: float | None = None,
) -> models.Created:
    parsed = validation.parse(models.ForkInput, body)
    deadline = deadline_after(budget_seconds)
    original = existing(store, SESSIONS, developer, session_id)
    up_to = find_message(store, developer, session_id, parsed.up_to)[1] if parsed.up_to else None
    metadata = original.get("metadata", {})
    if parsed.metadata is not None:
        metadata = merged_metadata(SESSIONS, metadata, parsed.metadata)
    record = {name: value for name, value in original.items() if name not in NOT_COPIED}
    record.update(id=clock.new_id(), version=1, metadata=metadata, **{POSITIONAL_IDS: True})
    parents = SESSIONS.parents(record)
    store.start_fork(developer, record["id"], parents)
    moved, with_tools = _copy_history(store, developer, original, record["id"], up_to, deadline)
    if with_tools:  # the copy's own calls awaiting a result
        record[OPEN_CALLS] = toolcalls.of_history(with_tools)
    last = list(moved.values())[-1] if moved else None
    record[LAST_POSITION], record[LAST_MESSAGE_ID] = last or ("", "")
    until = original.get("summary_until")
    if original.get("summary") is not None and until in moved:  # it covers nothing left out
        record["summary"], record["summary_until"] = original["summary"], moved[until][0]
    record["created_at"] = record["updated_at"] = clock.now()
    answer = models.Created(id=record["id"], created_at=record["created_at"])
    try:
        store.create(
            developer,
            "session",
            record,
            parents,
            SESSIONS.terms(record),
            receipt and receipt.record(201, answer),
            finishing_fork=True,
        )
    except MissingRecord as missing:  # its agent or user went meanwhile: the sweep removes the copy
        raise NotFound(f"{missing.kind} {missing.record_id} not found") from None
    return answer


def _copy_history(
    store: Store, developer: str, original: dict[str, Any], target: str, up_to: str | None, deadline: float
) -> tuple[dict[str, tuple[str, str]], list[tuple[str, dict[str, Any]]]]:
    """Copy the source's messages up to `up_to` into the target's partition, each append's messages
    as one new append at the same time; {old position: (new position, new id)}, in order, and the
    copies that make or answer tool calls, at their new positions."""
    moved: dict[str, tuple[str, str]] = {}
    with_tools: list[tuple[str, dict[str, Any]]] = []
    group: list[tuple[str, dict[str, Any]]] = []
    pending: list[tuple[str, dict[str, Any]]] = []

    def close_group() -> None:
        ids = message_ids(group[0][1]["created_at"], len(group))
        copies = [{**message, "id": new_id} for (_, message), new_id in zip(group, ids)]
        for (old, _), position, copy in zip(group, message_positions(copies), copies):
            moved[old] = (position, copy["id"])
            pending.append((position, copy))
            if copy.get("tool_calls") or copy.get("tool_call_id"):
                with_tools.append((position, copy))
        group.clear()

    source = original["id"]
    for position, message in store.visible_messages(developer, original, page_size=COPY_BATCH):
        if up_to is not None and position > up_to:
            break
        if group and message["created_at"] != group[0][1]["created_at"]:
            close_group()
        group.append((position, message))
        if len(pending) >= COPY_BATCH:
            store.put_messages(developer, target, pending)
            pending.clear()
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"the fork of session {source} did not finish copying within this request; "
                    "nothing of it is visible: retry, or fork up to an earlier message"
                )
    if group:
        close_group()
    store.put_messages(developer, target, pending)
    return moved, with_tools
