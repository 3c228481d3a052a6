"""What the store's aggregates share: the names of the session record's bookkeeping fields, the
purge kinds, and the shapes and conditions every aggregate writes (a record's key, an index
entry, "still as read", "not expired")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import keys, lineage, schema
from .codec import key
from .keys import RECORD
from .lineage import FORKED_THROUGH

Record = dict[str, Any]  # a record (or a message, or a receipt): its fields as plain values

# On a session record: the position of the newest message ever appended ("" before the first;
# absent on sessions written before it was kept, whose newest message a Query finds instead).
LAST_POSITION = "last_position"
# On a session record: the id of the message that is last in its history now ("" when it has none;
# absent on sessions written before it was kept, whose newest message a Query finds instead).
LAST_MESSAGE_ID = "last_message_id"
# On a session record: true when every message of it has an id that carries its position
# (keys.message_ids); absent on sessions created before, whose older messages a Query finds.
POSITIONAL_IDS = "positional_ids"
# On a session record: its tool calls awaiting a result, {call id: position of the message that
# made it}; absent on sessions that never made one (chalicelib/rules/toolcalls.py).
OPEN_CALLS = "open_calls"
# On a record: when it expires, in epoch seconds (the table's TTL attribute). From that second it is
# gone for every request; DynamoDB's TTL removes it later (docs/api.md, "Retention").
EXPIRES = schema.TTL_ATTRIBUTE
# A fork's marker expires this long after the fork began (a fork has a request's 15 s): then the
# stream removes what an unfinished fork copied.
FORK_MARKER_SECONDS = 3600
# The purge kind of a rewind's marker (dev#<d>#purge, history#<session id>#<range id>): what is left
# to delete.
REWIND = "history"

PK, SK = schema.PARTITION_KEY, schema.SORT_KEY


def still_as_read(record: dict[str, Any]) -> dict[str, Any]:
    """The condition that the stored record is still the one read: the same version and the same
    updated_at (a history append moves updated_at, and the entries with it, but not the version),
    and no fork made of it since (FORKED_THROUGH: a message a new fork reads is never deleted)."""
    forked = record.get(FORKED_THROUGH)
    return {
        "ConditionExpression": "#version = :version AND #updated = :updated AND "
        + ("attribute_not_exists(#forked)" if forked is None else "#forked = :forked"),
        "ExpressionAttributeNames": {"#version": "version", "#updated": "updated_at", "#forked": FORKED_THROUGH},
        "ExpressionAttributeValues": {
            ":version": {"N": str(record["version"])},
            ":updated": {"S": record["updated_at"]},
            **({":forked": {"S": forked}} if forked is not None else {}),
        },
    }


def index_entry(entry_key: tuple[str, str], record: Record) -> dict[str, Any]:
    """An index entry of `record`, with its expiry when it has one: lists skip expired entries in
    the Query itself, and DynamoDB's TTL removes them with the record."""
    expires = record.get(EXPIRES)
    return {**key(*entry_key), **({EXPIRES: {"N": str(int(expires))}} if expires is not None else {})}


def not_expired(now: int) -> dict[str, Any]:
    """A condition (with its names and values) that holds for an item not expired at `now`."""
    return {
        "expression": "(attribute_not_exists(#expires) OR #expires > :now)",
        "names": {"#expires": EXPIRES},
        "values": {":now": {"N": str(now)}},
    }


def fork_sources(record: Record) -> dict[str, Any]:
    """A purge marker's `sources`: the sessions a fork reads (its LINEAGE's partitions)."""
    sources = [source for source, _ in lineage.lineage(record)]
    return {"sources": sources} if sources else {}


def holder_of(session: Record, position: str) -> str:
    """The session whose partition holds the message at this position of `session`'s view."""
    part = lineage.part_of(session, position)
    return part.partition if part is not None else session["id"]


def record_key(developer: str, kind: str, record_id: str) -> dict[str, Any]:
    return key(keys.record_pk(developer, kind, record_id), RECORD)


@dataclass(frozen=True)
class HistoryChange:
    """A change of a session's history (a removal, a rewind, a clear) as its record records it, in
    the transaction that makes it, if the session is still as read."""

    updated_at: str  # the session's new updated_at: its update-order entries move with it
    terms: list[str]  # the session's index terms (the entries that move)
    last_message_id: str | None = None  # the new last message ("" for none); None: as it is
    clear_summary: bool = False  # the summary covered what goes: removed, with a new version
    open_calls: dict[str, str] | None = None  # its tool calls awaiting a result; None: as they are
