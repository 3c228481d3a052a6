"""The consistency check: do a developer's index entries, records and forks agree exactly?

Recomputes every entry each record should have (store/index.py) and compares with what the
table holds: `missing` entries would hide a record from lists, `orphaned` ones point at nothing
or at a stale position, `orphaned_messages` are history whose session is gone with no purge
pending. Forks (docs/design.md, "Forks"): `broken_forks` are sessions whose lineage names a
partition without the reference that keeps it (its messages may be purged under them),
`orphaned_fork_refs` references whose fork is gone with no purge pending. All five are empty when
the transactions did their job. `retained` counts deleted sessions whose history stays because a
fork still reads it: expected, not a problem. Reads the developer's whole key space with a Scan:
an operator's tool (tests, the admin CLI), never a request path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.rules.kinds import KINDS
from chalicelib.store import Store, index, keys, lineage, scans

PROBLEMS = ("missing", "orphaned", "orphaned_messages", "broken_forks", "orphaned_fork_refs", "orphaned_checkpoints")


def check(store: Store, developer: str, progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """The report; `progress()` is called once per item the scan reads (the admin CLI's counter)."""
    records: list[tuple[str, dict[str, Any]]] = []
    entries: set[tuple[str, str]] = set()
    message_sessions: dict[str, int] = {}
    checkpoint_sessions: set[str] = set()
    purging: set[tuple[str, str]] = set()
    refs: set[tuple[str, str]] = set()  # (the forked session, the fork)
    for pk, sk, attributes in scans.developer_items(store, developer):
        if progress is not None:
            progress()
        item = keys.parse(pk, sk)
        if item.what == "record" and item.kind in KINDS:
            records.append((item.kind, attributes))
        elif item.what == "message":
            message_sessions[item.record_id] = message_sessions.get(item.record_id, 0) + 1
        elif item.what == "checkpoint":
            checkpoint_sessions.add(item.record_id)
        elif item.what == "purge":
            purging.add((item.kind, item.record_id))
        elif item.what == "entry":
            entries.add((pk, sk))
        elif item.what == "fork_ref":
            refs.add((item.record_id, item.fork_id))
    expected = {
        entry
        for kind, record in records
        for entry in keys.entry_keys(developer, kind, record, index.terms_of(record, KINDS[kind].parents(record)))
    }
    sessions = {record["id"]: record for kind, record in records if kind == "session"}
    deleted = {record_id for kind, record_id in purging if kind == "session"}
    return {
        "records": len(records),
        "entries": len(entries),
        "missing": sorted(expected - entries),
        "orphaned": sorted(entries - expected),
        "orphaned_messages": sorted(sid for sid in message_sessions if sid not in sessions and sid not in deleted),
        # a thread's checkpoints whose session is gone, and not being purged
        "orphaned_checkpoints": sorted(
            sid for sid in checkpoint_sessions if sid not in sessions and sid not in deleted
        ),
        "broken_forks": sorted(
            fork_id
            for fork_id, record in sessions.items()
            if any((source, fork_id) not in refs for source, _ in lineage.lineage(record))
        ),
        "orphaned_fork_refs": sorted(
            f"{source}#{fork_id}" for source, fork_id in refs if fork_id not in sessions and fork_id not in deleted
        ),
        "retained": sum(1 for sid in deleted if any(source == sid for source, _ in refs)),
    }
