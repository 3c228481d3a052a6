"""The consistency check: do a developer's index entries and records agree exactly?

Recomputes every entry each record should have (store/index.py) and compares with what the
table holds: `missing` entries would hide a record from lists, `orphaned` ones point at nothing
or at a stale position, `orphaned_messages` are history whose session is gone with no purge
pending. All three are empty when the transactions did their job. Reads the developer's whole
key space with a Scan: an operator's tool (tests, the admin CLI), never a request path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.rules.kinds import KINDS
from chalicelib.store import Store, index, keys, scans


def check(store: Store, developer: str, progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """The report; `progress()` is called once per item the scan reads (the admin CLI's counter)."""
    records: list[tuple[str, dict[str, Any]]] = []
    entries: set[tuple[str, str]] = set()
    message_sessions: dict[str, int] = {}
    purging: set[tuple[str, str]] = set()
    for pk, sk, attributes in scans.developer_items(store, developer):
        if progress is not None:
            progress()
        item = keys.parse(pk, sk)
        if item.what == "record" and item.kind in KINDS:
            records.append((item.kind, attributes))
        elif item.what == "message":
            message_sessions[item.record_id] = message_sessions.get(item.record_id, 0) + 1
        elif item.what == "purge":
            purging.add((item.kind, item.record_id))
        elif item.what == "entry":
            entries.add((pk, sk))
    expected = {
        entry
        for kind, record in records
        for entry in keys.entry_keys(developer, kind, record, index.terms_of(record, KINDS[kind].parents(record)))
    }
    sessions = {record["id"] for kind, record in records if kind == "session"}
    return {
        "records": len(records),
        "entries": len(entries),
        "missing": sorted(expected - entries),
        "orphaned": sorted(entries - expected),
        "orphaned_messages": sorted(
            sid for sid in message_sessions if sid not in sessions and ("session", sid) not in purging
        ),
    }
