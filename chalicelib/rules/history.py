"""Conversation history: one item per message in its session's partition (store/history.py).

Order is total and stable: a message's position is `<created_at>#<append>#<n>`, fixed when it is
written. An append reads its session (which keeps its newest position) and stamps its messages
strictly after that position (chalicelib/clock.after), so a writer's next append always lands
after its last one, whatever the clocks of the Lambdas involved. Each Put is conditional on its
own fresh key, so messages never collide.

An append is activity: it moves the session's `updated_at` (and its place in the update order of
lists) in the same transaction as the messages, conditional on the `updated_at` it read.
Concurrent appends to one session therefore contend; the one that lost reads the session again
and restamps, so all succeed, each in order. Cost per message is the same at message 10 and at
message 100,000.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from chalicelib.rules import cursor, models, toolcalls
from chalicelib.rules.conflicts import retry_on_conflict
from chalicelib.rules.deletes import cascades_in_background, deadline_after, finish_rewind, resume
from chalicelib.rules.idempotency import Receipt
from chalicelib.rules.kinds import SESSIONS
from chalicelib.rules.lifecycle import refuse_if_ended
from chalicelib.rules.parameters import PAGE_MAX, HistoryQuery
from chalicelib.rules.records import existing, live
from chalicelib.shared import clock
from chalicelib.shared.errors import HistoryMoved, NotFound, ToolResultRequired, Unavailable
from chalicelib.store import (
    BEFORE_ANY_MESSAGE,
    FORKED_THROUGH,
    HIDDEN,
    LAST_MESSAGE_ID,
    LAST_POSITION,
    REWIND,
    SUMMARY_UNTIL,
    HistoryChange,
    MissingRecord,
    SessionRecord,
    Store,
    VersionConflict,
    hidden_ranges,
    lineage,
    message_ids,
    message_positions,
    message_time,
)

# Rounds an append may lose to other appends of its session before a 409: eight writers appending
# to one session at once on DynamoDB Local needed up to 34 for the unluckiest append (most none).
APPEND_ATTEMPTS = 60


def cursor_digest(session_id: str, descending: bool) -> str:
    """What a history cursor is bound to: the session and the order."""
    return hashlib.sha256(f"history|{session_id}|{'desc' if descending else 'asc'}".encode()).hexdigest()[:32]


def get(store: Store, developer: str, session_id: str, query: HistoryQuery | None = None) -> dict[str, Any]:
    """One page of a session's history: oldest first, or newest first (`descending`: "the last N
    turns" in one query); `next_cursor` continues it while more remain."""
    query = query or HistoryQuery()
    digest = cursor_digest(session_id, query.descending)
    # the position of the last message answered
    after = cursor.decode(query.cursor, developer, digest) if query.cursor is not None else None
    session = existing(store, SESSIONS, developer, session_id)
    # One item past the page tells whether another page follows.
    read = store.visible_messages(
        developer,
        session,
        descending=query.descending,
        after=after,
        page_size=min(query.offset + query.limit + 1, PAGE_MAX + 1),
    )
    page = list(islice(read, query.offset, query.offset + query.limit + 1))
    more = len(page) > query.limit
    page = page[: query.limit]
    return {
        "items": [models.Message.model_validate(message) for _, message in page],
        "next_cursor": cursor.encode(developer, digest, page[-1][0]) if more else None,
    }


@dataclass(frozen=True)
class Follows:
    """An append's precondition (`after` in its body): the message that must still be the last one
    in the history, None for "the history is empty"."""

    message_id: str | None

    @classmethod
    def of(cls, parsed: models.HistoryAppend | models.ChatInput) -> Follows | None:
        """The body's precondition; None when it gave no `after` (append wherever the end is)."""
        return cls(parsed.after) if "after" in parsed.model_fields_set else None


def check_follows(store: Store, developer: str, session: SessionRecord, follows: Follows | None) -> None:
    """HistoryMoved unless the message `follows` names is the last one of the session as read: the
    session record says which one is (no extra read), but for sessions from before it did."""
    if follows is None:
        return
    last = last_message_id(store, developer, session)
    if last != follows.message_id:
        raise HistoryMoved(session["id"], follows.message_id, last)


def last_message_id(store: Store, developer: str, session: SessionRecord) -> str | None:
    """The id of the session's last message (None: its history is empty), as its record keeps it,
    or for a session from before the record did, as its history says (one read)."""
    last = session.get(LAST_MESSAGE_ID)
    if last is None:
        newest = store.newest_message(developer, session)
        return newest[1] if newest else None
    return last or None


def append(
    store: Store, developer: str, session_id: str, parsed: models.HistoryAppend, receipt: Receipt | None = None
) -> dict[str, Any]:
    """Append messages in the order given, atomically (all stored or none); with `after`, only if
    that is still the last message (Follows)."""
    stamped = commit(
        store,
        developer,
        session_id,
        [message.model_dump() for message in parsed.messages],
        receipt and (lambda stamped: receipt.record(201, positions=stamped.positions, session_id=session_id)),
        follows=Follows.of(parsed),
    )
    return {"items": [models.Message.model_validate(message) for message in stamped.messages]}


def append_messages(
    store: Store, developer: str, session_id: str, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Store validated messages (role, content, name) after the session's newest one; the
    stored messages, with their ids and created_at."""
    return commit(store, developer, session_id, messages).messages


def commit(
    store: Store,
    developer: str,
    session_id: str,
    messages: list[dict[str, Any]],
    receipt_for: Callable[[Stamped], dict[str, Any]] | None = None,
    session: SessionRecord | None = None,
    follows: Follows | None = None,
) -> Stamped:
    """Stamp the messages after the session's newest and store them with the session's new
    updated_at, in one transaction; on a concurrent change of the session, read it again and
    restamp. `receipt_for(stamped)` makes the request's idempotency receipt (which may hold an
    answer built from the stamps); `session`, a record read moments ago, saves the first read.
    With `follows`, every round checks the last message on the session it read: the transaction's
    condition on that session's updated_at makes the check hold at commit, so a concurrent append
    turns into a retry, which answers HistoryMoved. The stored messages, with their ids, created_at
    and positions."""

    def attempt(lost: VersionConflict | None) -> Stamped:
        # the session as the lost race left it, when DynamoDB handed it back; else read it
        current = (lost.current if lost else session) or existing(store, SESSIONS, developer, session_id)
        refuse_if_ended(current)
        check_follows(store, developer, current, follows)
        stamped = _stamp(store, developer, current, messages)
        positioned = list(zip(stamped.positions, stamped.messages))
        calls = toolcalls.after_messages(current, positioned)
        store.append_messages(
            developer,
            current,
            positioned,
            # never before its newest message: what changes the session later (an end) is after it
            max(clock.after(current["updated_at"]), stamped.messages[-1]["created_at"]),
            SESSIONS.terms(current),
            receipt_for and receipt_for(stamped),
            open_calls=calls,
        )
        return stamped

    return retry_on_conflict(
        attempt, f"session {session_id} kept changing under this append; retry it", attempts=APPEND_ATTEMPTS
    )


@dataclass(frozen=True)
class Stamped:
    """One append's messages as stored: with their ids and `created_at`, and their positions
    (computed once, here, from them)."""

    messages: list[dict[str, Any]]
    positions: list[str]


def _stamp(store: Store, developer: str, session: SessionRecord, messages: list[dict[str, Any]]) -> Stamped:
    """The messages with their ids and a `created_at` strictly after the session's newest."""
    last = session.get(LAST_POSITION)
    if last is None:  # a session from before positions were kept on it: ask the history
        found = store.newest_message(developer, session)
        newest = message_time(found[0]) if found else None
    else:
        newest = message_time(last) if last else None
    timestamp = clock.after(newest) if newest else clock.now()
    ids = message_ids(timestamp, len(messages))
    stamped = [
        {
            "id": message_id,
            "role": m["role"],
            "content": m["content"],
            "name": m.get("name"),
            "tool_calls": m.get("tool_calls"),
            "tool_call_id": m.get("tool_call_id"),
            "created_at": timestamp,
        }
        for message_id, m in zip(ids, messages)
    ]
    return Stamped(stamped, message_positions(stamped))


def get_message(store: Store, developer: str, session_id: str, message_id: str) -> models.Message:
    """One message of a session's history, by its id (one read: its id names its position)."""
    _, _, message = find_message(store, developer, session_id, message_id)
    return models.Message.model_validate(message)


def delete_message(
    store: Store, developer: str, session_id: str, message_id: str, only_if_last: bool = False
) -> models.MessageDeleted:
    """Remove one message; the others keep their order and ids. An assistant message that made
    tool calls takes the tool messages that answered them with it (named in the answer); a
    deleted tool message's call awaits a result again. The session records it as a change of its
    history (updated_at moves); if the last message goes, the newest one left becomes the last
    (for `after`); a summary that covered what goes is cleared, to be rebuilt from what is left by
    the next adaptive context (docs/api.md, "Editing the history"). `only_if_last`: only while it
    is the last message (HistoryMoved otherwise): the removal is conditional on the session as
    read, so an append that lands first makes it read again, and refuse."""

    def attempt(lost: VersionConflict | None) -> models.MessageDeleted:
        session, position, message = find_message(store, developer, session_id, message_id)
        if only_if_last and (last := last_message_id(store, developer, session)) != message_id:
            raise HistoryMoved(session_id, message_id, last, deleting=True)
        results = _results_of(store, developer, session, position, message)
        going = [position, *results]
        calls = _open_calls_without(store, developer, session, position, message)
        last_goes = last_message_id(store, developer, session) in {message_id, *results.values()}
        newest_left = None
        if last_goes:  # the newest message that stays becomes the last
            newest_left = store.newest_message(developer, session, before=max(going))
            while newest_left and newest_left[0] in going:
                newest_left = store.newest_message(developer, session, before=newest_left[0])
        until = session.get(SUMMARY_UNTIL)
        # what another session reads (a fork of this one, or the one this one inherits it from) is
        # hidden here, not deleted
        shared = [p for p in going if lineage.shared(session, p)]
        hidden = _hiding(store, developer, session, shared)
        if hidden:
            _refuse_too_many_hidden(session, adding=len(hidden))
        try:
            change = HistoryChange(
                clock.after(session["updated_at"]),
                SESSIONS.terms(session),
                last_message_id=(newest_left[1] if newest_left else "") if last_goes else None,
                clear_summary=bool(until) and min(going) <= until,
                open_calls=calls,
            )
            store.remove_messages(developer, session, [p for p in going if p not in shared], change, hidden)
        except MissingRecord:  # removed meanwhile by another request
            raise NotFound(f"message {message_id} not found in session {session_id}") from None
        return models.MessageDeleted(id=message_id, deleted_at=clock.now(), tool_results_deleted=list(results.values()))

    return retry_on_conflict(attempt, f"session {session_id} kept changing under this delete; retry it")


def _hiding(store: Store, developer: str, session: SessionRecord, positions: list[str]) -> list[tuple[str, str]]:
    """The hidden ranges that take these shared positions out of the session's view, each from
    the visible message before it and through the end of a range that begins at it, so deleting
    neighbours one by one (popping the last message again and again) keeps one range, which
    covers the ranges it joins, not one per message."""
    ranges = hidden_ranges(session)
    found: list[tuple[str, str]] = []
    for position in sorted(positions):
        before = store.newest_message(developer, session, before=position)
        after, through = (before[0] if before else BEFORE_ANY_MESSAGE), position
        while (following := next((t for a, t in ranges if a == through), None)) is not None:
            through = following
        if found and after <= found[-1][1]:
            found[-1] = (found[-1][0], max(through, found[-1][1]))
        else:
            found.append((after, through))
    return found


def _results_of(
    store: Store, developer: str, session: SessionRecord, position: str, message: dict[str, Any]
) -> dict[str, str]:
    """{position: id} of the tool messages that answered the calls this message made: those no
    longer open, looked for among the RESULTS_SCAN messages after it."""
    answered = set(toolcalls.called(message)) - set(toolcalls.open_calls(session))
    found: dict[str, str] = {}
    if not answered:
        return found
    later = store.visible_messages(developer, session, after=position, page_size=toolcalls.WINDOW)
    for after_position, later_message in islice(later, toolcalls.RESULTS_SCAN):
        if later_message.get("tool_call_id") in answered:
            found[after_position] = later_message["id"]
            answered.discard(later_message["tool_call_id"])
            if not answered:
                break
    return found


def _open_calls_without(
    store: Store, developer: str, session: SessionRecord, position: str, message: dict[str, Any]
) -> dict[str, str] | None:
    """The session's open calls once this message goes (None: unchanged): its own calls close for
    good; a tool result's call, found among the WINDOW messages before it, is open again, which
    only the last unit may be: ToolResultRequired when anything but that call's results follows."""
    if not toolcalls.uses_tools(session):
        return None
    calls = toolcalls.open_calls(session)
    for call_id in toolcalls.called(message):
        calls.pop(call_id, None)
    answered = message.get("tool_call_id")
    if answered is not None:
        earlier = store.visible_messages(developer, session, descending=True, after=position, page_size=20)
        for call_position, call_message in islice(earlier, toolcalls.WINDOW):
            if answered in toolcalls.called(call_message):
                unit = set(toolcalls.called(call_message))
                later = store.visible_messages(developer, session, after=position, page_size=models.MAX_TOOL_CALLS)
                if any(m.get("tool_call_id") not in unit for _, m in islice(later, models.MAX_TOOL_CALLS)):
                    raise ToolResultRequired(message["id"], answered)
                calls[answered] = call_position
                break
    return calls


def find_message(
    store: Store, developer: str, session_id: str, message_id: str
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(the session, the message's position, the message), or NotFound naming what is absent."""
    session, position, message = (None, None, None)
    if clock.is_uuid(session_id) and clock.is_uuid(message_id):
        session, position, message = store.find_message(developer, session_id, message_id)
    if live(session) is None:
        raise NotFound(f"session {session_id} not found")
    if position is None or message is None:
        raise NotFound(f"message {message_id} not found in session {session_id}")
    return session, position, message


MAX_HIDDEN_RANGES = 64  # rewinds and clears of one session whose purge is still under way


def rewind(
    store: Store, developer: str, session_id: str, after_id: str, budget_seconds: float | None = None
) -> models.Deleted:
    """Remove every message after `after_id`, which becomes the last ("regenerate from here").
    One transaction records it on the session and hides the range from every read at once (the
    messages up to the newest at that moment: an append arriving meanwhile lands after them and
    stays), with a marker of what is left to delete. Serialized with every other change of the
    session by its condition, so a message another rewind hid is a 404 here, and the last message
    is always the newest one left. The purge then runs from the stream (deletes.purge_hidden);
    without a consumer, here, under the request's budget: past it 503 deletion_in_progress, and the
    same DELETE (or the operators' sweep) finishes it, removing nothing appended since. A summary
    that covered removed messages is cleared, as for one message."""
    deadline = deadline_after(budget_seconds)

    def attempt(lost: VersionConflict | None) -> list[Hidden]:
        """The ranges to purge here: the one this rewind hid, or none (nothing after the message),
        or, for the repeat a 503 asked for, those still pending after it."""
        session, position, message = find_message(store, developer, session_id, after_id)
        through = session.get(LAST_POSITION)
        if through is None:  # a session from before positions were kept on it: ask the history
            newest = store.newest_message(developer, session)
            through = newest[0] if newest else ""
        pending = _pending(session)
        if through <= position or last_message_id(store, developer, session) == after_id:
            return []  # nothing (visible) after it
        if not cascades_in_background() and any(hidden.after == position for hidden in pending):
            return pending  # the repeat a 503 asked for: it finishes those purges, and takes nothing newer
        _refuse_too_many_hidden(session)
        until = session.get(SUMMARY_UNTIL)
        calls = None
        if toolcalls.uses_tools(session):  # the calls whose results go await them again
            kept = [
                (position, message),
                *islice(
                    store.visible_messages(developer, session, descending=True, after=position),
                    toolcalls.WINDOW - 1,
                ),
            ]
            calls = toolcalls.reopened(session, reversed(kept))
        try:
            change = HistoryChange(
                clock.after(session["updated_at"]),
                SESSIONS.terms(session),
                last_message_id=after_id,
                clear_summary=bool(until) and until > position,
                open_calls=calls,
            )
            range_id, tidy = store.start_rewind(developer, session, (position, after_id), through, change)
        except MissingRecord:
            raise NotFound(f"message {after_id} not found in session {session_id}") from None
        return [Hidden(range_id, position, through, session.get(FORKED_THROUGH), tuple(tidy))]

    hidden = retry_on_conflict(attempt, f"session {session_id} kept changing under this rewind; retry it")
    _purge_here(store, developer, session_id, hidden, deadline)
    return models.Deleted(id=session_id, deleted_at=clock.now())


def clear(store: Store, developer: str, session_id: str, budget_seconds: float | None = None) -> models.Deleted:
    """Clear a session's history, the session staying: a rewind to before the first message. In
    one transaction the whole history up to its newest message is hidden, its summary and open
    calls go and it records that it has no last message; the purge follows as a rewind's does. An
    append arriving meanwhile lands after the range and stays."""
    deadline = deadline_after(budget_seconds)

    def attempt(lost: VersionConflict | None) -> list[Hidden]:
        session = existing(store, SESSIONS, developer, session_id)
        newest = store.newest_message(developer, session)
        summarized = session.get("summary") is not None or session.get(SUMMARY_UNTIL) is not None
        if newest is None and not summarized and not toolcalls.open_calls(session):
            # nothing to clear; what earlier rewinds or clears left to purge, purged here
            return _pending(session)
        _refuse_too_many_hidden(session)
        through = max(session.get(LAST_POSITION) or "", newest[0] if newest else "") or BEFORE_ANY_MESSAGE
        change = HistoryChange(
            clock.after(session["updated_at"]),
            SESSIONS.terms(session),
            last_message_id="",
            clear_summary=summarized,
            open_calls={} if toolcalls.uses_tools(session) else None,
        )
        range_id, tidy = store.start_rewind(developer, session, (BEFORE_ANY_MESSAGE, ""), through, change)
        return [Hidden(range_id, BEFORE_ANY_MESSAGE, through, session.get(FORKED_THROUGH), tuple(tidy))]

    try:
        hidden = retry_on_conflict(
            attempt, f"session {session_id} kept changing while its history was cleared; retry it"
        )
    except MissingRecord:
        raise NotFound(f"session {session_id} not found") from None
    _purge_here(store, developer, session_id, hidden, deadline)
    return models.Deleted(id=session_id, deleted_at=clock.now())


def _refuse_too_many_hidden(session: SessionRecord, adding: int = 1) -> None:
    """The session record holds at most MAX_HIDDEN_RANGES ranges: those of rewinds and clears
    whose purge is under way, and those of messages deleted from history shared with a fork
    (lineage.shared), which stay while it is shared."""
    if len(hidden_ranges(session)) + adding > MAX_HIDDEN_RANGES:
        raise Unavailable(
            f"session {session['id']} has {len(hidden_ranges(session))} hidden ranges (rewinds or clears whose "
            "purge is still under way, and messages deleted from history it shares with a fork); retry in a "
            "moment, or rewind instead of deleting shared messages one by one"
        )


def _pending(session: SessionRecord) -> list[Hidden]:
    """The session's hidden ranges whose purge may be under way."""
    forked = session.get(FORKED_THROUGH)
    return [Hidden(rid, a, t, forked) for rid, (a, t) in (session.get(HIDDEN) or {}).items()]


@dataclass(frozen=True)
class Hidden:
    """A range of a session's history hidden by a rewind or a clear: positions after `after` up
    to `through`, purged under the marker `<session id>#<range id>`."""

    range_id: str
    after: str
    through: str
    forked_through: str | None = None  # the session's FORKED_THROUGH when it was hidden (or since)
    tidy: tuple[str, ...] | None = None  # the partitions its lineage's cut stopped reading (None: the marker says)


def _purge_here(store: Store, developer: str, session_id: str, hidden: list[Hidden], deadline: float) -> None:
    """Without a consumer of the stream, these hidden ranges are purged in the request; with one,
    each marker's insert starts its purge there."""
    if cascades_in_background():
        return
    for each in hidden:
        marked = f"{session_id}#{each.range_id}"
        if each.tidy is None:  # a range read off the session (a repeat): its marker says the rest
            resume(store, developer, REWIND, marked, deadline)
            continue
        marker = {"after": each.after, "through": each.through, FORKED_THROUGH: each.forked_through, "tidy": each.tidy}
        finish_rewind(store, developer, marked, marker, deadline)
