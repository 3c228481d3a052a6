"""The one retry policy for optimistic concurrency: a conditional write that lost a race
(VersionConflict) is tried again on what is stored now, after a jittered backoff, a bounded
number of times; past that the caller gets a 409 and may retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from chalicelib.shared import backoff
from chalicelib.shared.errors import Conflict
from chalicelib.store import VersionConflict

T = TypeVar("T")
UPDATE_ATTEMPTS = 10  # rounds for an update or a delete before a 409


def back_off(attempt: int) -> None:
    """Full jitter, 5 ms doubling to 100 ms: colliding writers spread out instead of colliding
    again in lockstep. Ten rounds wait at most about half a second in all."""
    backoff.pause(attempt, first=0.005, most=0.1)


def retry_on_conflict(
    attempt: Callable[[VersionConflict | None], T], gave_up: str, attempts: int = UPDATE_ATTEMPTS
) -> T:
    """`attempt(lost)` until it returns: `lost` is the VersionConflict of the round before (None
    at first), whose `current` may save the next round a read. Conflict(`gave_up`) past `attempts`."""
    lost: VersionConflict | None = None
    for number in range(attempts):
        try:
            return attempt(lost)
        except VersionConflict as conflict:
            lost = conflict
            back_off(number)
    raise Conflict(gave_up)
