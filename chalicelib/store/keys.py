"""The key layout: every `pk` and `sk` the table holds is built here, and read back here
(`parse`). docs/design.md draws it:

    pk                                  sk                          what
    apikey#<sha256>                     #record                     an API key -> developer_id
    dev#<d>#apikeys                     <prefix>#<sha256>           the developer's keys, for listing
    dev#<d>#<kind>#<id>                 #record                     an agent, user or session
    dev#<d>#session#<id>                msg#<created_at>#<a>#<n>    one history message (append a, n-th)
    dev#<d>#session#<id>                fork#<fork id>              a fork reads this partition up to `through`
    dev#<d>#<kind>s#<term>#by_created   <created_at>#<id>           index entry (store/index.py)
    dev#<d>#<kind>s#<term>#by_updated   <updated_at>#<id>           index entry, fixed terms only
    dev#<d>#purge                       <kind>#<id>                 a cascading delete under way
    dev#<d>#idem#<sha256 of key>        #record                     an Idempotency-Key's receipt (TTL)

Every item of a developer carries `dev#<d>#` in its key, so no query can reach another's data.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from . import index

RECORD = "#record"
MESSAGE_PREFIX = "msg#"
FORK_REF_PREFIX = "fork#"
# Sorts after every message position: the open end of a history's key range.
MESSAGES_END = MESSAGE_PREFIX[:-1] + chr(ord(MESSAGE_PREFIX[-1]) + 1)
# A thread's checkpoints (LangGraph's) in their session's partition, before its messages:
# ckpt#<namespace, hex>#<checkpoint id>#c, and its pending writes ...#w#<task id>#<index>.
CHECKPOINT_PREFIX = "ckpt#"
WRITE_INDEX_OFFSET = 10**6  # write indexes may be negative (LangGraph's special channels): stored offset
API_KEY_PREFIX = "apikey#"
PURGE_PREFIX_OF_SESSIONS = "session#"


def developer_prefix(developer: str) -> str:
    """What every partition key of a developer's items starts with (API key records aside)."""
    return f"dev#{developer}#"


def api_key_pk(key_hash: str) -> str:
    return f"{API_KEY_PREFIX}{key_hash}"


def keys_pk(developer: str) -> str:
    return f"dev#{developer}#apikeys"


def key_listing_sk(prefix: str, key_hash: str) -> str:
    return f"{prefix}#{key_hash}"


def record_pk(developer: str, kind: str, record_id: str) -> str:
    return f"dev#{developer}#{kind}#{record_id}"


def index_pk(developer: str, kind: str, term: str, order: str) -> str:
    return f"dev#{developer}#{kind}s#{term}#by_{order.removesuffix('_at')}"


def receipt_pk(developer: str, key_hash: str) -> str:
    return f"dev#{developer}#idem#{key_hash}"


def purge_pk(developer: str) -> str:
    return f"dev#{developer}#purge"


def purge_sk(kind: str, record_id: str) -> str:
    return f"{kind}#{record_id}"


def purge_target(sk: str) -> tuple[str, str]:
    """(kind, id) of the record a purge marker's sort key names."""
    kind, _, record_id = sk.partition("#")
    return kind, record_id


class IndexEntry(NamedTuple):
    """An index entry as a list reads it: where it sits in its order (its sort key; to the rules
    an opaque position that a cursor carries), and the record's id."""

    position: str
    record_id: str


def sort_key(record: dict[str, Any], order: str) -> str:
    """Where a record sits in an order: the sort field, then the id to break ties (both fixed width,
    so they sort as strings). Cursors carry this too."""
    return f"{record[order]}#{record['id']}"


def id_in(key: str) -> str:
    """The record id at the end of a sort key."""
    return key.rsplit("#", 1)[1]


def message_positions(messages: list[dict[str, Any]]) -> list[str]:
    """Sort keys of one append's messages: its time, its first message's id, each one's place."""
    group = messages[0]["id"]
    return [f"{MESSAGE_PREFIX}{m['created_at']}#{group}#{n:03d}" for n, m in enumerate(messages)]


# A message's id carries its position, so one read finds a message by id. It is a version-4 UUID
# (the julep SDK asserts the version) whose 122 free bits hold the append's time in microseconds
# since 1970 (64 bits), the message's place in its append (8 bits) and the append's random part
# (50 bits, shared by its messages). Its position is `msg#<created_at>#<the append's first id>#<n>`,
# as for every message before ids carried it; those keep their random ids and are found by a Query.
# The bits are mixed by an invertible function first, so ids look as random as any other's.
_MICROSECONDS, _PLACE, _RANDOM = 64, 8, 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_BITS = 1 << 122
_K1, _K2 = 0x2545F4914F6CDD1D9E3779B97F4A7C15 % _BITS | 1, 0x1B873593CC9E2D51BF58476D1CE4E5B9 % _BITS | 1
_K1_INVERSE, _K2_INVERSE = pow(_K1, -1, _BITS), pow(_K2, -1, _BITS)


def _mixed(payload: int) -> int:
    mixed = payload * _K1 % _BITS
    return (mixed ^ mixed >> 61) * _K2 % _BITS


def _unmixed(mixed: int) -> int:
    value = mixed * _K2_INVERSE % _BITS
    return (value ^ value >> 61) * _K1_INVERSE % _BITS


def _as_uuid4(payload: int) -> str:
    """122 bits, mixed, as a version-4, RFC-variant UUID."""
    payload = _mixed(payload)
    value = (payload >> 74) << 80 | 0x4 << 76 | ((payload >> 62) & 0xFFF) << 64 | 0b10 << 62 | (payload & (1 << 62) - 1)
    return str(uuid.UUID(int=value))


def _payload(message_id: str) -> int | None:
    value = uuid.UUID(message_id).int
    if value >> 76 & 0xF != 4 or value >> 62 & 0b11 != 0b10:
        return None
    return _unmixed((value >> 80) << 74 | ((value >> 64) & 0xFFF) << 62 | (value & (1 << 62) - 1))


def message_ids(created_at: str, count: int) -> list[str]:
    """The ids of one append's `count` messages, all stamped `created_at`."""
    micros = (datetime.strptime(created_at, _TIME_FORMAT).replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
    group = secrets.randbits(_RANDOM)
    return [_as_uuid4((micros << _PLACE | n) << _RANDOM | group) for n in range(count)]


def position_of(message_id: str) -> str | None:
    """The position a message id names, if it is one that carries it (None: an id from before)."""
    payload = _payload(message_id)
    if payload is None:
        return None
    micros, place, group = payload >> (_PLACE + _RANDOM), payload >> _RANDOM & 0xFF, payload & (1 << _RANDOM) - 1
    try:
        created_at = (_EPOCH + timedelta(microseconds=micros)).strftime(_TIME_FORMAT)
    except OverflowError:
        return None
    first = _as_uuid4((micros << _PLACE) << _RANDOM | group)
    return f"{MESSAGE_PREFIX}{created_at}#{first}#{place:03d}"


def _parts_of(position: str) -> tuple[int, int, int] | None:
    """(microseconds, place, the append's random part) of a position whose append id carries them."""
    try:
        _, created_at, first, place = position.split("#")
    except ValueError:
        return None
    payload = _payload(first) if len(first) == 36 else None
    if payload is None or not place.isdigit():
        return None
    micros = payload >> (_PLACE + _RANDOM)
    if (_EPOCH + timedelta(microseconds=micros)).strftime(_TIME_FORMAT) != created_at:
        return None
    return micros, int(place), payload & (1 << _RANDOM) - 1


def _mask(session_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"fork|{session_id}".encode()).digest()[:8], "big") & (1 << _RANDOM) - 1


def inherited_id(session_id: str, position: str) -> str:
    """The id a session gives a message it inherits from a session it was forked from (its
    lineage): the message's position with the append's random part masked by the session's own
    bits, so each fork has its own ids and `inherited_position` finds the position again."""
    parts = _parts_of(position)
    if parts is None:
        raise ValueError(f"{position} names no positional id")
    micros, place, group = parts
    return _as_uuid4((micros << _PLACE | place) << _RANDOM | group ^ _mask(session_id))


def inherited_position(session_id: str, message_id: str) -> str | None:
    """The position `inherited_id(session_id, position)` was made from (None: not such an id)."""
    payload = _payload(message_id)
    if payload is None:
        return None
    micros, place = payload >> (_PLACE + _RANDOM), payload >> _RANDOM & 0xFF
    group = (payload & (1 << _RANDOM) - 1) ^ _mask(session_id)
    try:
        created_at = (_EPOCH + timedelta(microseconds=micros)).strftime(_TIME_FORMAT)
    except OverflowError:
        return None
    return f"{MESSAGE_PREFIX}{created_at}#{_as_uuid4((micros << _PLACE) << _RANDOM | group)}#{place:03d}"


def checkpoints_of(namespace: str | None) -> str:
    """The sort-key prefix of a namespace's checkpoints (None: every namespace's)."""
    return CHECKPOINT_PREFIX if namespace is None else f"{CHECKPOINT_PREFIX}{namespace.encode().hex()}#"


def checkpoint_prefix(namespace: str, checkpoint_id: str) -> str:
    """The sort-key prefix of one checkpoint and its writes (hex keeps one namespace's keys from
    starting with another's)."""
    return f"{checkpoints_of(namespace)}{checkpoint_id}#"


def checkpoint_sk(namespace: str, checkpoint_id: str) -> str:
    return checkpoint_prefix(namespace, checkpoint_id) + "c"


def checkpoint_write_sk(namespace: str, checkpoint_id: str, task_id: str, index: int) -> str:
    return f"{checkpoint_prefix(namespace, checkpoint_id)}w#{task_id}#{index + WRITE_INDEX_OFFSET:08d}"


def fork_ref_sk(fork_id: str) -> str:
    return f"{FORK_REF_PREFIX}{fork_id}"


def message_time(position: str) -> str:
    """`created_at` of the message at this position."""
    return position.split("#")[1]


def entry_keys(developer: str, kind: str, record: dict[str, Any], terms: Iterable[str]) -> list[tuple[str, str]]:
    """(pk, sk) of every index entry a record has under these terms."""
    return [
        (index_pk(developer, kind, term, order), sort_key(record, order))
        for term in terms
        for order in index.orders(term)
    ]


def update_order_keys(developer: str, kind: str, record: dict[str, Any], terms: Iterable[str]) -> list[tuple[str, str]]:
    """(pk, sk) of a record's entries that are ordered by updated_at (its fixed terms')."""
    return [
        (index_pk(developer, kind, term, "updated_at"), sort_key(record, "updated_at"))
        for term in terms
        if "updated_at" in index.orders(term)
    ]


@dataclass(frozen=True)
class ItemKey:
    """What an item is, read off its key. `what` is one of: record, message, fork_ref, entry,
    purge, receipt, key_listing, checkpoint (all under a developer), api_key (a key's record, under no
    developer), other."""

    what: str
    developer: str | None = None
    kind: str | None = None  # record: its kind; message: "session"; purge: the purged kind
    record_id: str | None = None  # record, message (its session), purge (the purged record), fork_ref (the forked)
    fork_id: str | None = None  # fork_ref: the fork that reads the partition


def parse(pk: str, sk: str) -> ItemKey:
    if pk.startswith(API_KEY_PREFIX):
        return ItemKey("api_key")
    if not pk.startswith("dev#"):
        return ItemKey("other")
    developer, separator, rest = pk[len("dev#") :].partition("#")
    if not separator:
        return ItemKey("other")
    parts = rest.split("#")
    if parts == ["purge"]:
        kind, record_id = purge_target(sk)
        return ItemKey("purge", developer, kind, record_id)
    if parts == ["apikeys"]:
        return ItemKey("key_listing", developer)
    if len(parts) == 2 and parts[0] == "idem":
        return ItemKey("receipt", developer)
    if len(parts) == 2 and sk.startswith(MESSAGE_PREFIX):
        return ItemKey("message", developer, parts[0], parts[1])
    if len(parts) == 2 and sk == RECORD:
        return ItemKey("record", developer, parts[0], parts[1])
    if len(parts) == 2 and sk.startswith(CHECKPOINT_PREFIX):  # a checkpoint or its write
        return ItemKey("checkpoint", developer, parts[0], parts[1])
    if len(parts) == 2 and sk.startswith(FORK_REF_PREFIX):  # record_id: the session forked from
        return ItemKey("fork_ref", developer, parts[0], parts[1], sk.removeprefix(FORK_REF_PREFIX))
    if len(parts) >= 3 and parts[-1].startswith("by_"):
        return ItemKey("entry", developer, parts[0].removesuffix("s"))
    return ItemKey("other", developer)
