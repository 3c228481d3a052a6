"""Deleting agents, users and sessions with everything under them. The record vanishes at once,
with a purge marker in the same transaction. The cascade (a session's history, a parent's
sessions) then runs from the table's stream (rules/cascades.py), started by the marker's insert,
where a consumer runs (cascades_in_background); elsewhere in the request, under a time budget:
past it the answer is 503 `deletion_in_progress`, and the same DELETE resumes from the marker. An
operator's sweep (finish_pending_deletes) finishes what nobody finished."""

from __future__ import annotations

import os
import time
from typing import Any

from chalicelib.rules import models
from chalicelib.rules.conflicts import retry_on_conflict
from chalicelib.rules.kinds import KINDS, SESSIONS, Kind
from chalicelib.rules.records import check_expected, live
from chalicelib.shared import clock
from chalicelib.shared.errors import DeletionInProgress, NotFound
from chalicelib.store import FORKED_THROUGH, HIDDEN, REWIND, MissingRecord, Store, VersionConflict, index, lineage

DELETE_BUDGET_SECONDS = (
    15.0  # cascading work per request: with one worst DynamoDB call (12 s) inside API Gateway's 29 s
)


def deadline_after(budget_seconds: float | None) -> float:
    # Read at call time, so configuration (and tests) can change the module's budget.
    return time.monotonic() + (DELETE_BUDGET_SECONDS if budget_seconds is None else budget_seconds)


def delete(
    store: Store,
    kind: Kind,
    developer: str,
    record_id: str,
    budget_seconds: float | None = None,
    expected: frozenset[int] | None = None,
) -> models.Deleted:
    """Delete a record and everything under it; `expected`: the versions If-Match allows. A record
    that is gone already (deleted, whether or not its purge has finished; or never there) is a
    NotFound, as for a GET: one answer for a repeated DELETE (docs/api.md, "Deletes"). Without a
    consumer of the stream, a repeat first pushes an unfinished purge forward (503 while it is still
    unfinished past the budget)."""
    deadline = deadline_after(budget_seconds)
    if not clock.is_uuid(record_id):
        raise NotFound(f"{kind.name} {record_id} not found")

    def attempt(_: VersionConflict | None) -> bool:
        """Whether this request deleted the record (False: it was gone already, or expired)."""
        record = live(store.get(developer, kind.name, record_id))
        if record is None:
            return False
        check_expected(kind, record, expected)
        try:
            store.delete(developer, kind.name, record, kind.terms(record), kind.parents(record))
        except MissingRecord:
            return False  # a concurrent DELETE won; if its cascade is unfinished we resume it below
        return True  # a VersionConflict: changed meanwhile, its index entries moved; read it again

    deleted = retry_on_conflict(attempt, f"{kind.name} {record_id} kept changing under this delete; retry it")
    if not cascades_in_background():  # a repeat pushes an unfinished purge forward (its marker says)
        resume(store, developer, kind.name, record_id, deadline, check=not deleted)
    if not deleted:
        raise NotFound(f"{kind.name} {record_id} not found")
    return models.Deleted(id=record_id, deleted_at=clock.now())


def cascades_in_background() -> bool:
    """Whether a consumer of the table's stream finishes cascades (SESSIONS_CASCADES=stream: the
    deployed stack, and make run): then a DELETE does only its transaction and answers 202 at once.
    Otherwise (tests, a bare `chalice local`) the request cascades under its budget."""
    return os.environ.get("SESSIONS_CASCADES", "").strip().lower() == "stream"


def finish_pending_deletes(store: Store, developer: str, budget_seconds: float | None = None) -> int:
    """Complete every cascade an interrupted DELETE left behind; returns how many it finished.
    For an operator's sweep (admin CLI), safe to run at any time and any number of times."""
    deadline = deadline_after(budget_seconds)
    pending = store.pending_purges(developer)
    for kind_name, record_id in pending:
        resume(store, developer, kind_name, record_id, deadline)
    return len(pending)


def resume(store: Store, developer: str, kind_name: str, record_id: str, deadline: float, check: bool = True) -> None:
    """Finish what one purge marker says is left (a cascade, or a rewind's range); nothing if it
    is finished already (one GetItem says so). `check=False` when the caller knows without
    reading: it has just put the marker, or the marker is gone but its work is not (a fork's that
    expired). DeletionInProgress past the deadline: the marker stays for a retry."""
    # a session's marker names the partitions it read as a fork; a rewind's, its range
    wanted = check or kind_name in (SESSIONS.name, REWIND)
    marker = store.purge_marker(developer, kind_name, record_id) if wanted else None
    if marker is None and check:
        return
    if kind_name == REWIND:
        if marker is not None:
            finish_rewind(store, developer, record_id, marker, deadline)
    elif kind_name == SESSIONS.name:
        _purge_session(store, developer, record_id, deadline, marker or {})
    elif kind_name in KINDS:
        _purge(store, KINDS[kind_name], developer, record_id, deadline)


def finish_rewind(store: Store, developer: str, marked: str, marker: dict[str, Any], deadline: float) -> None:
    """Delete what a rewind's (or a clear's) marker says is left: the messages after `after` up to
    `through`, which every read has hidden since the rewind (those appended since stay), but those
    a fork still reads; then the session's hidden range, if nothing of it is kept; then the marker.
    `marked` is what the marker names, `<session id>#<range id>` (a bare session id for a rewind
    from before ranges were hidden). Under the budget, resumable as cascades are: every step
    deletes what is there."""
    session_id, _, range_id = marked.partition("#")
    # A rewind's and a clear's range begins at or after its session's fork point (they cut the
    # lineage there), and a fork made after it hides the range too: only forks made before it,
    # which the marker names by how far they read, may read some of it.
    keep = _kept(store, developer, session_id) if (marker.get(FORKED_THROUGH) or "") > marker["after"] else None
    purge_range(store, developer, session_id, range_id, marker["after"], marker["through"], deadline, keep)
    for source in marker.get("tidy") or []:  # the partitions the session's lineage stopped reading
        tidy(store, developer, source, deadline)
    store.finish_purge(developer, REWIND, marked)


def purge_range(
    store: Store,
    developer: str,
    session_id: str,
    range_id: str,
    after: str,
    through: str,
    deadline: float,
    keep: str | None,
    fork_point: str | None = None,
) -> None:
    """Delete a hidden range's messages from the session's own partition, but those at or before
    `keep`, the furthest a fork of it reads (_kept); drop the range from the session once nothing
    of it is kept there and none of it is inherited (a range at or before `fork_point` hides what
    another partition holds, for good)."""
    while store.delete_history_batch(developer, session_id, after, through, above=keep):
        _check(deadline, f"removing messages of session {session_id} is under way; repeat the DELETE to continue it")
    if range_id and (keep is None or keep <= after) and (fork_point is None or after >= fork_point):
        store.finish_hidden(developer, session_id, range_id)


def tidy(store: Store, developer: str, session_id: str, deadline: float) -> None:
    """A fork stopped reading this session's partition: delete what only it kept there (a deleted
    session's history, the hidden ranges of a live one)."""
    marker = store.purge_marker(developer, SESSIONS.name, session_id)
    if marker is not None:
        _purge_session(store, developer, session_id, deadline, marker)
        return
    session = store.get(developer, SESSIONS.name, session_id)
    ranges = ((session or {}).get(HIDDEN) or {}).items()
    keep = _kept(store, developer, session_id) if ranges else None  # one read of the references for all
    for range_id, (after, through) in ranges:
        purge_range(store, developer, session_id, range_id, after, through, deadline, keep, lineage.fork_point(session))


def _kept(store: Store, developer: str, session_id: str) -> str | None:
    """The furthest position of the session's partition that a fork reads (None: no fork reads it)."""
    return max(store.fork_refs(developer, session_id).values(), default=None)


def _check(deadline: float, message: str) -> None:
    if time.monotonic() > deadline:
        raise DeletionInProgress(message)


def _purge_session(store: Store, developer: str, session_id: str, deadline: float, marker: dict[str, Any]) -> None:
    """A deleted session's history goes, but what forks of it still read (their `fork#` references
    say how far): then the marker stays, and the last of those forks to go finishes it (tidy).
    Once nothing is kept, the session stops reading the partitions it was forked from (its
    references there go, and what only it kept there with them), and the marker goes."""
    refs = store.fork_refs(developer, session_id)
    keep = max(refs.values(), default=None)
    while store.delete_checkpoints_batch(developer, session_id):  # a thread's (LangGraph's): no fork reads them
        _check(deadline, f"deleting session {session_id} is under way; repeat the DELETE to continue it")
    while store.delete_history_batch(developer, session_id, above=keep):
        _check(deadline, f"deleting session {session_id} is under way; repeat the DELETE to continue it")
    if refs:
        return
    for source in marker.get("sources") or []:
        store.delete_fork_ref(developer, source, session_id)
        tidy(store, developer, source, deadline)
    store.finish_purge(developer, SESSIONS.name, session_id)


def _purge(store: Store, kind: Kind, developer: str, record_id: str, deadline: float) -> None:
    """An agent's or user's cascade: each of its sessions deleted and purged, then its marker."""

    def check_budget() -> None:
        _check(deadline, f"deleting {kind.name} {record_id} is under way; repeat the DELETE to continue it")

    children = store.index_entries(
        developer, SESSIONS.name, index.parent_term(kind.name, record_id), "created_at", descending=False
    )
    for session_id in (entry.record_id for entry in children):
        check_budget()
        _delete_child(store, developer, session_id)
        resume(store, developer, SESSIONS.name, session_id, deadline)
    # Children whose own delete went through before an interruption are no longer in the
    # index, only in the purge markers that name this parent: finish those too.
    for session_id in store.pending_child_purges(developer, kind.name, record_id):
        check_budget()
        resume(store, developer, SESSIONS.name, session_id, deadline)
    store.finish_purge(developer, kind.name, record_id)


def _delete_child(store: Store, developer: str, session_id: str) -> None:
    """Delete a session found under a parent being deleted (its history follows in _purge)."""

    def attempt(_: VersionConflict | None) -> Any:
        session = store.get(developer, SESSIONS.name, session_id)
        if session is None:
            return None  # a concurrent cascade took it; its marker is finished by whoever holds it
        try:
            store.delete(developer, SESSIONS.name, session, SESSIONS.terms(session), SESSIONS.parents(session))
        except MissingRecord:
            pass
        return None

    retry_on_conflict(attempt, f"session {session_id} kept changing during a cascading delete; repeat the DELETE")
