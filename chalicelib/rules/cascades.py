"""Cascades run from the table's stream (issue 15, in part): the same code for the Lambda that
DynamoDB Streams invokes and for `make run`'s local consumer (to come).

Two kinds of change start work:

- a purge marker inserted (a DELETE's transaction, a rewind, an expiry below): finish what it
  says is left, as the operators' sweep does (deletes.resume). Not a fork's marker: the fork is
  being copied under it. That marker expires an hour on, and its TTL removal purges what a fork
  that never finished copied;
- a record removed by DynamoDB's TTL (a REMOVE whose user identity is the DynamoDB service):
  remove its index entries and leave a purge marker for its history or its sessions, as a DELETE
  would; the marker's own insert then finishes it.

Every step is idempotent, so a batch delivered twice, or retried after a crash halfway, ends in the
same table. Past the deadline DeletionInProgress propagates: the batch is retried, and resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.rules.deletes import deadline_after, resume
from chalicelib.rules.kinds import KINDS
from chalicelib.store import Record, Store, parse_key

# A stream consumer's budget for one batch (its Lambda may run 15 minutes; it gets 12 of them).
STREAM_BUDGET_SECONDS = 12 * 60.0


@dataclass(frozen=True)
class Change:
    """One stream record, as plain values: `old` is the item's image before (a TTL removal's; None
    otherwise), `by_ttl` whether DynamoDB's TTL made it."""

    event: str  # INSERT, MODIFY or REMOVE
    pk: str
    sk: str
    old: Record | None = None
    by_ttl: bool = False
    fork: bool = False  # a fork's purge marker (its image says so)


def apply(store: Store, changes: list[Change], budget_seconds: float | None = None) -> int:
    """Do the work these changes start, in order; how many started some."""
    deadline = deadline_after(STREAM_BUDGET_SECONDS if budget_seconds is None else budget_seconds)
    started = 0
    for change in changes:
        item = parse_key(change.pk, change.sk)
        if change.event == "INSERT" and item.what == "purge" and not change.fork:
            resume(store, item.developer, item.kind, item.record_id, deadline)
            started += 1
        elif change.event == "REMOVE" and change.by_ttl and item.what == "purge" and change.fork:
            # an unfinished fork's copy: its marker is what TTL removed
            resume(store, item.developer, item.kind, item.record_id, deadline, check=False)
            started += 1
        elif change.event == "REMOVE" and change.by_ttl and item.what == "record" and item.kind in KINDS:
            record = change.old or {"id": item.record_id}
            kind = KINDS[item.kind]
            store.remove_expired(item.developer, kind.name, record, kind.terms(record), kind.parents(record))
            resume(store, item.developer, kind.name, item.record_id, deadline, check=False)  # (just put)
            started += 1
    return started
