"""The key layout: every `pk` and `sk` the table holds is built here, and read back here
(`parse`). docs/design.md draws it:

    pk                                  sk                          what
    apikey#<sha256>                     #record                     an API key -> developer_id
    dev#<d>#apikeys                     <prefix>#<sha256>           the developer's keys, for listing
    dev#<d>#<kind>#<id>                 #record                     an agent, user or session
    dev#<d>#session#<id>                msg#<created_at>#<a>#<n>    one history message (append a, n-th)
    dev#<d>#<kind>s#<term>#by_created   <created_at>#<id>           index entry (store/index.py)
    dev#<d>#<kind>s#<term>#by_updated   <updated_at>#<id>           index entry, fixed terms only
    dev#<d>#purge                       <kind>#<id>                 a cascading delete under way
    dev#<d>#idem#<sha256 of key>        #record                     an Idempotency-Key's receipt (TTL)

Every item of a developer carries `dev#<d>#` in its key, so no query can reach another's data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import index

RECORD = "#record"
MESSAGE_PREFIX = "msg#"
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
    """What an item is, read off its key. `what` is one of: record, message, entry, purge, receipt,
    key_listing (all under a developer), api_key (a key's record, under no developer), other."""

    what: str
    developer: str | None = None
    kind: str | None = None  # record: its kind; message: "session"; purge: the purged kind
    record_id: str | None = None  # record, message (its session), purge (the purged record)


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
    if len(parts) >= 3 and parts[-1].startswith("by_"):
        return ItemKey("entry", developer, parts[0].removesuffix("s"))
    return ItemKey("other", developer)
