"""What the store's aggregates share: the purge kinds, and the shapes and conditions every
aggregate writes (a record's key, an index entry, "still as read", "not expired"). The records'
fields and types are stored.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, ConditionExpressionBuilder

from . import keys, lineage, schema
from .codec import key, value
from .keys import RECORD
from .stored import (
    EXPIRES,
    FORKED_THROUGH,
    LAST_MESSAGE_ID,
    LAST_POSITION,
    OPEN_CALLS,
    POSITIONAL_IDS,
    Record,
    SessionRecord,
)

# the record fields and types the aggregates share, from stored.py
__all__ = ["EXPIRES", "LAST_MESSAGE_ID", "LAST_POSITION", "OPEN_CALLS", "POSITIONAL_IDS", "Record", "SessionRecord"]

Item = dict[str, Any]  # a message, a receipt or a marker: its fields as plain values
# A fork's marker expires this long after the fork began (a fork has a request's 15 s): then the
# stream removes what an unfinished fork copied.
FORK_MARKER_SECONDS = 3600
# The purge kind of a rewind's marker (dev#<d>#purge, history#<session id>#<range id>): what is left
# to delete.
REWIND = "history"

PK, SK = schema.PARTITION_KEY, schema.SORT_KEY


def condition(test: ConditionBase) -> dict[str, Any]:
    """`test` as a request's ConditionExpression with its names and values, through boto3's own
    ConditionExpressionBuilder: every name and value is a placeholder (#n0, :v0, ...), so no
    attribute name or user value is ever spelled into an expression. Names written by hand beside
    them (in an UpdateExpression) use other spellings (#version, :hidden)."""
    built = ConditionExpressionBuilder().build_expression(test)
    return {
        "ConditionExpression": built.condition_expression,
        "ExpressionAttributeNames": built.attribute_name_placeholders,
        "ExpressionAttributeValues": {name: value(v) for name, v in built.attribute_value_placeholders.items()},
    }


def still_as_read(record: Record) -> dict[str, Any]:
    """The condition that the stored record is still the one read: the same version and the same
    updated_at (a history append moves updated_at, and the entries with it, but not the version),
    and no fork made of it since (FORKED_THROUGH: a message a new fork reads is never deleted)."""
    forked = record.get(FORKED_THROUGH)
    return condition(
        Attr("version").eq(record["version"])
        & Attr("updated_at").eq(record["updated_at"])
        & (Attr(FORKED_THROUGH).not_exists() if forked is None else Attr(FORKED_THROUGH).eq(forked))
    )


def index_entry(entry_key: tuple[str, str], record: Record) -> dict[str, Any]:
    """An index entry of `record`, with its expiry when it has one: lists skip expired entries in
    the Query itself, and DynamoDB's TTL removes them with the record."""
    expires = record.get(EXPIRES)
    return {**key(*entry_key), **({EXPIRES: {"N": str(int(expires))}} if expires is not None else {})}


def not_expired(now: int) -> ConditionBase:
    """Holds for an item not expired at `now` (epoch seconds)."""
    return Attr(EXPIRES).not_exists() | Attr(EXPIRES).gt(now)


def fork_sources(record: SessionRecord) -> dict[str, Any]:
    """A purge marker's `sources`: the sessions a fork reads (its LINEAGE's partitions)."""
    sources = [source for source, _ in lineage.lineage(record)]
    return {"sources": sources} if sources else {}


def holder_of(session: SessionRecord, position: str) -> str:
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
