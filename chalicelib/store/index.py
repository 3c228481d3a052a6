"""Which index partitions ("terms") a record belongs to, so lists read what matches.

A term names one sorted set of a developer's records of one kind:

    all             every record                          ordered by created_at and by updated_at
    agent#<id>      the sessions of one agent             ordered by created_at and by updated_at
    user#<id>       the sessions of one user              ordered by created_at and by updated_at
    meta#<digest>   the records whose metadata has one    ordered by created_at only, so updates
                    top-level key equal to one value      that leave metadata alone move nothing
    status#ended    the sessions that were ended          ordered by created_at and by updated_at
                    (active ones are every other: a list of them filters `all` or a parent's term)

The digest hashes (key, typed value), so user-supplied keys and values never appear in a key
expression and any key (`"#a = :b OR"`, `"a.b"`) is just bytes. Typed as filters compare: `1`
and `1.0` share a term, `1`, `"1"` and `true` do not.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

ALL = "all"
# Strings longer than this are not indexed (filters on them take the scan path): index keys stay
# small and a filter value this long is almost never selective anyway.
MAX_INDEXED_STRING_BYTES = 1024
# Index entries per record, bounded so every write fits one TransactWriteItems of 100 actions:
# a PUT that swaps all 40 metadata values is 1 record + 6 fixed-term moves + 40 + 40 = 87 actions.
MAX_INDEXED_VALUES = 40


def _typed(value: Any) -> list[str] | None:
    if isinstance(value, bool):
        return ["b", "true" if value else "false"]
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
        return ["n", "0" if number == 0 else str(number.normalize())]
    if isinstance(value, str) and len(value.encode("utf-8")) <= MAX_INDEXED_STRING_BYTES:
        return ["s", value]
    return None  # null, objects, arrays, long strings: not indexed


def metadata_term(key: str, value: Any) -> str | None:
    """The term of `key == value`, or None if such a condition cannot use an index."""
    typed = _typed(value)
    if typed is None:
        return None
    canonical = json.dumps([key, *typed], ensure_ascii=False, separators=(",", ":"))
    return "meta#" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def parent_term(kind: str, record_id: str) -> str:
    return f"{kind}#{record_id}"


def orders(term: str) -> tuple[str, ...]:
    """The sort orders a term's entries are kept in."""
    return ("created_at",) if term.startswith("meta#") else ("created_at", "updated_at")


def metadata_terms(metadata: dict[str, Any]) -> list[str]:
    return [term for key, value in metadata.items() if (term := metadata_term(key, value))]


ENDED = "status#ended"


def terms_of(record: dict[str, Any], parents: list[tuple[str, str]]) -> list[str]:
    ended = [ENDED] if record.get("status") == "ended" else []
    return [
        ALL,
        *(parent_term(kind, pid) for kind, pid in parents),
        *ended,
        *metadata_terms(record.get("metadata", {})),
    ]
