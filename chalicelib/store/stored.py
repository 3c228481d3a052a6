"""What the store hands back for an agent, a user or a session: a typed record, built once from
the item (`record_of`), so that above the store a record's fields have one declared type each
(the version is an int, not the Decimal DynamoDB numbers come back as) and the session's
bookkeeping fields, which no request names, are declared and explained here and nowhere else.

Records stay plain dicts at run time (TypedDict): they are written back as read, merged with
`{**old, **changes}`, and compared field by field, at no cost. (No `from __future__ import
annotations` here: TypedDict must see `Required`.)
"""

from decimal import Decimal
from typing import Any, Required, TypedDict

from . import schema
from .codec import deserialize


class StoredRecord(TypedDict, total=False):
    id: Required[str]
    created_at: Required[str]
    updated_at: Required[str]  # only moves forward (clock.after); a history change moves it too
    # Every write of the record is conditional on the version it read (and on updated_at, which a
    # history append moves without a new version): store/items.py still_as_read.
    version: Required[int]
    metadata: dict[str, Any]
    # When it expires, in epoch seconds (the table's TTL attribute, schema.TTL_ATTRIBUTE). From
    # that second it is gone for every request; DynamoDB's TTL removes it later.
    expires_at: int


class AgentRecord(StoredRecord, total=False):
    name: Required[str]
    about: str
    instructions: list[str]
    model: str
    default_settings: dict[str, Any]
    tools: str  # the compact JSON of the tools (models.StoredTools): one attribute, bounded


class UserRecord(StoredRecord, total=False):
    name: str
    about: str


class SessionRecord(StoredRecord, total=False):
    agent_id: Required[str]
    user_id: str
    situation: str
    render_templates: bool
    token_budget: int
    context_overflow: str
    status: str  # "active" (or absent) until POST /sessions/{id}/end makes it "ended", for good
    ended_at: str
    summary: str  # written by an adaptive context (rules/context.py), never by a request
    # --- bookkeeping: kept by the store's history writes, in the transaction of each change ---
    # The position of the newest message ever appended ("" before the first; absent on sessions
    # written before it was kept, whose newest message a Query finds instead). An append stamps
    # its messages strictly after it, so a writer's next append always lands after its last.
    last_position: str
    # The id of the message that is last in its history now ("" when it has none; absent on
    # sessions written before it was kept): an append's `after` is checked against it, no read.
    last_message_id: str
    # True when every message of it has an id that carries its position (keys.message_ids);
    # absent on sessions created before, whose older messages a Query finds.
    positional_ids: bool
    # Its tool calls awaiting a result, {call id: position of the message that made it}; absent
    # on sessions that never made one (rules/toolcalls.py): a call is never kept apart from its
    # results.
    open_calls: dict[str, str]
    # The position of the last message the summary covers: the summary range is every message up
    # to it (rules/context.py). A change of the history before it clears both.
    summary_until: str
    # What its history reads of others' (a fork's), what it hides, and how far forks read it
    # (store/lineage.py, which reads and writes these three).
    lineage: list[list[str]]  # stretches [partition, low, high] of others' histories it reads
    hidden: dict[str, list[str]]  # {range id: [after, through]}: positions no read shows
    forked_through: str  # the newest position a fork of it reads: never deleted, only hidden


Record = AgentRecord | UserRecord | SessionRecord


def _declared(record: type, name: str) -> str:
    """`name`, once checked to be a field `record` declares: the constants below stay true."""
    if name not in record.__required_keys__ | record.__optional_keys__:
        raise AssertionError(f"{record.__name__} declares no {name}")
    return name


LAST_POSITION = _declared(SessionRecord, "last_position")
LAST_MESSAGE_ID = _declared(SessionRecord, "last_message_id")
POSITIONAL_IDS = _declared(SessionRecord, "positional_ids")
OPEN_CALLS = _declared(SessionRecord, "open_calls")
SUMMARY_UNTIL = _declared(SessionRecord, "summary_until")
LINEAGE = _declared(SessionRecord, "lineage")
HIDDEN = _declared(SessionRecord, "hidden")
FORKED_THROUGH = _declared(SessionRecord, "forked_through")
EXPIRES = _declared(StoredRecord, schema.TTL_ATTRIBUTE)
_WHOLE_NUMBERS = ("version", EXPIRES, "token_budget")


def record_of(item: dict[str, Any]) -> Record:
    """An agent, user or session record from its typed item: its fields as plain values, and the
    numbers the rules count with as ints."""
    record = deserialize(item)
    for name in _WHOLE_NUMBERS:
        if isinstance(record.get(name), Decimal):
            record[name] = int(record[name])
    return record
