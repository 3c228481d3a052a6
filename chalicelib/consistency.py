"""The consistency check: do a developer's index entries and records agree exactly?

Recomputes every entry each record should have (chalicelib/index.py) and compares with what the
table holds: `missing` entries would hide a record from lists, `orphaned` ones point at nothing
or at a stale position, `orphaned_messages` are history whose session is gone with no purge
pending. All three are empty when the transactions did their job. Reads the developer's whole
key space with a Scan: an operator's tool (tests, the admin CLI), never a request path.
"""
from __future__ import annotations

from typing import Any

from . import index, store as store_module
from .service import KINDS
from .store import RECORD, Store


def check(store: Store, developer: str) -> dict[str, Any]:
    prefix = store_module.developer_prefix(developer)
    records: list[tuple[str, dict[str, Any]]] = []
    entries: set[tuple[str, str]] = set()
    message_sessions: dict[str, int] = {}
    purging: set[str] = set()
    for pk, sk, attributes in store.scan_developer(developer):
        parts = pk[len(prefix):].split("#")
        if sk == RECORD and len(parts) == 2 and parts[0] in KINDS:
            records.append((parts[0], attributes))
        elif sk.startswith("msg#"):
            message_sessions[parts[1]] = message_sessions.get(parts[1], 0) + 1
        elif parts == ["purge"]:
            purging.add(sk)
        elif parts[0].endswith("s") and parts[-1].startswith("by_"):
            entries.add((pk, sk))
    expected = {
        (key["pk"]["S"], key["sk"]["S"])
        for kind, record in records
        for key in store_module.entry_keys(developer, kind, record,
                                           index.terms_of(record, KINDS[kind].parents(record)))
    }
    sessions = {record["id"] for kind, record in records if kind == "session"}
    return {
        "records": len(records),
        "entries": len(entries),
        "missing": sorted(expected - entries),
        "orphaned": sorted(entries - expected),
        "orphaned_messages": sorted(sid for sid in message_sessions
                                    if sid not in sessions and f"session#{sid}" not in purging),
    }
