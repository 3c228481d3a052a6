"""Forking a session ("try another path"): a new session with the original's agent, user,
situation and settings, its metadata merged with the given, and the original's history up to and
including a message (all of it by default): the same order and times, its own ids. The original is
unchanged.

A fork is copy-on-write (docs/design.md, "Forks"): one transaction creates the session with a
lineage naming the partitions it reads and how far (store/lineage.py), puts a reference in each
of them so no purge takes what it reads, and records the fork point on the original; nothing is
copied, so a fork costs the same at 100,000 messages as at 10. It hides what the original hid up to
that point, and from then on the two go their own ways: appends, rewinds, deletes, expiry of either
never show in the other. A session from before message ids carried positions is copied instead,
under a purge marker, within the request's budget (the first version of forks).
"""

from __future__ import annotations

import time
from itertools import islice
from typing import Any

from chalicelib.rules import models, toolcalls
from chalicelib.rules.conflicts import retry_on_conflict
from chalicelib.rules.deletes import deadline_after
from chalicelib.rules.history import find_message
from chalicelib.rules.idempotency import Receipt
from chalicelib.rules.kinds import SESSIONS
from chalicelib.rules.records import existing, merged_metadata
from chalicelib.shared import clock
from chalicelib.shared.errors import NotFound, Unavailable, ValidationFailed
from chalicelib.store import (
    FORKED_THROUGH,
    HIDDEN,
    LAST_MESSAGE_ID,
    LAST_POSITION,
    LINEAGE,
    OPEN_CALLS,
    POSITIONAL_IDS,
    SUMMARY_UNTIL,
    MissingRecord,
    SessionRecord,
    Store,
    VersionConflict,
    inherited_id,
    lineage,
    message_ids,
    message_positions,
)

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
        SUMMARY_UNTIL,
        LAST_POSITION,
        LAST_MESSAGE_ID,
        POSITIONAL_IDS,
        OPEN_CALLS,
        HIDDEN,
        LINEAGE,
        FORKED_THROUGH,
        "status",  # a fork of an ended session is a new, active one
        "ended_at",
    }
)
COPY_BATCH = 200  # messages written per round of the copy (8 BatchWriteItem calls)


def fork(
    store: Store,
    developer: str,
    session_id: str,
    parsed: models.ForkInput,
    receipt: Receipt | None = None,
    budget_seconds: float | None = None,
) -> models.Created:

    def attempt(lost: VersionConflict | None) -> models.Created:
        if parsed.up_to:  # one read of the original and the message
            original, point, message = find_message(store, developer, session_id, parsed.up_to)
        else:
            original = existing(store, SESSIONS, developer, session_id)
        if not original.get(POSITIONAL_IDS):
            return _copied(store, developer, original, parsed, receipt, deadline_after(budget_seconds))
        record = _new_record(original, parsed)
        # the last unit's calls may await results: read back as far as one unit reaches, if any
        reach = toolcalls.WINDOW if toolcalls.uses_tools(original) else 1
        if parsed.up_to:
            earlier = store.visible_messages(developer, original, descending=True, after=point, page_size=reach)
            tail = [(point, message), *islice(earlier, reach - 1)]
        else:
            newest = store.visible_messages(developer, original, descending=True, page_size=reach)
            tail = list(islice(newest, reach))
            point = tail[0][0] if tail else None
        record[LAST_POSITION], record[LAST_MESSAGE_ID] = "", ""
        if point is not None:
            stretches, hidden = lineage.for_fork(original, point)
            if len(stretches) > lineage.MAX_LINEAGE:
                raise ValidationFailed(
                    f"session {session_id} is a fork of a fork {len(stretches) - 1} levels deep; a fork reads "
                    f"at most {lineage.MAX_LINEAGE} sessions' histories. Fork one nearer the original",
                    details=[{"field": "session_id", "message": "forked too deep", "type": "fork_depth"}],
                )
            record[LINEAGE] = stretches
            if hidden:
                record[HIDDEN] = hidden
            record[LAST_POSITION], record[LAST_MESSAGE_ID] = point, inherited_id(record["id"], point)
            calls = toolcalls.of_history(reversed(tail))
            if calls:  # the copy's own calls awaiting a result (the last unit's, if it awaits any)
                record[OPEN_CALLS] = calls
            until = original.get(SUMMARY_UNTIL)
            if original.get("summary") is not None and until is not None and until <= point:
                record["summary"], record[SUMMARY_UNTIL] = original["summary"], until
        answer = models.Created(id=record["id"], created_at=record["created_at"])
        try:
            store.create_fork(
                developer,
                record,
                original,
                SESSIONS.parents(record),
                SESSIONS.terms(record),
                receipt and receipt.record(201, answer),
            )
        except MissingRecord as missing:  # its agent or user went meanwhile, or the original
            raise NotFound(f"{missing.kind} {missing.record_id} not found") from None
        return answer

    return retry_on_conflict(attempt, f"session {session_id} kept changing while it was forked; retry it")


def _new_record(original: SessionRecord, parsed: models.ForkInput) -> dict[str, Any]:
    """The fork's record before its history: what it takes from the original, a new id, and the
    metadata merged."""
    metadata = original.get("metadata", {})
    if parsed.metadata is not None:
        metadata = merged_metadata(SESSIONS, metadata, parsed.metadata)
    record = {name: value for name, value in original.items() if name not in NOT_COPIED}
    now = clock.now()
    record.update(
        id=clock.new_id(), version=1, metadata=metadata, created_at=now, updated_at=now, **{POSITIONAL_IDS: True}
    )
    return record


def _copied(
    store: Store,
    developer: str,
    original: SessionRecord,
    parsed: models.ForkInput,
    receipt: Receipt | None,
    deadline: float,
) -> models.Created:
    """A fork of a session from before message ids carried positions: its history copied into the
    new session's partition under a purge marker, then one transaction creates the session."""
    session_id = original["id"]
    up_to = find_message(store, developer, session_id, parsed.up_to)[1] if parsed.up_to else None
    record = _new_record(original, parsed)
    parents = SESSIONS.parents(record)
    store.start_fork(developer, record["id"], parents)
    moved, with_tools = _copy_history(store, developer, original, record["id"], up_to, deadline)
    if with_tools:  # the copy's own calls awaiting a result
        record[OPEN_CALLS] = toolcalls.of_history(with_tools)
    last = list(moved.values())[-1] if moved else None
    record[LAST_POSITION], record[LAST_MESSAGE_ID] = last or ("", "")
    until = original.get(SUMMARY_UNTIL)
    if original.get("summary") is not None and until in moved:  # it covers nothing left out
        record["summary"], record[SUMMARY_UNTIL] = original["summary"], moved[until][0]
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
    store: Store, developer: str, original: SessionRecord, target: str, up_to: str | None, deadline: float
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
