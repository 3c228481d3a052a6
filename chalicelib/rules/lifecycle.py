"""A session's lifecycle: ending it (docs/api.md, "Ended sessions").

`POST /sessions/{id}/end` makes a session `ended`: it stays readable and listable (lists filter on
`status`, the ended ones from their own index term), and appends and chats are refused with 409
session_ended. Ending is idempotent and final: an ended session answers the same again, and no
operation makes it active (fork it to go on).
"""

from __future__ import annotations

from chalicelib.rules.conflicts import retry_on_conflict
from chalicelib.rules.kinds import SESSIONS
from chalicelib.rules.records import Versioned, check_expected, existing, wire
from chalicelib.shared import clock
from chalicelib.shared.errors import NotFound, SessionEnded
from chalicelib.store import MissingRecord, SessionRecord, Store, VersionConflict

ENDED = "ended"


def is_ended(session: SessionRecord) -> bool:
    return session.get("status") == ENDED


def refuse_if_ended(session: SessionRecord) -> None:
    if is_ended(session):
        raise SessionEnded(session["id"])


def end(
    store: Store,
    developer: str,
    session_id: str,
    expected: frozenset[int] | None = None,
) -> Versioned:
    """End the session (one conditional write: the record, and its entries under the ended term);
    an ended one answers as it is, unchanged. (Its body, models.SessionEnd, has no fields.)"""

    def attempt(_: VersionConflict | None) -> Versioned:
        old = existing(store, SESSIONS, developer, session_id)
        if is_ended(old):
            return Versioned(wire(SESSIONS, old), old["version"])
        check_expected(SESSIONS, old, expected)
        now = clock.after(old["updated_at"])
        new = {**old, "status": ENDED, "ended_at": now, "updated_at": now, "version": old["version"] + 1}
        try:
            store.replace(developer, SESSIONS.name, old, new, SESSIONS.terms(old), SESSIONS.terms(new))
        except MissingRecord:
            raise NotFound(f"session {session_id} not found") from None
        return Versioned(wire(SESSIONS, new), new["version"])

    return retry_on_conflict(attempt, f"session {session_id} kept changing while it was being ended; retry it")
