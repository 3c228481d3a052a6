"""A session's history as every read sees it: which partition holds which stretch of positions,
and which ranges are hidden. Pure functions of a session record (no DynamoDB call).

- **Lineage** (LINEAGE): a fork reads its parent's messages in place (copy-on-write), never a copy.
  Its record lists the stretches it inherits, `[[source session id, through], ...]` in order:
  positions up to the first `through` from the first source, then up to the next from the next
  (a fork of a fork inherits from both). Its own messages, in its own partition, come after the
  last `through`, its fork point: they are stamped after its `last_position`, which starts there.
  Positions never change, so a summary's position, a cursor and `after` keep their meaning; ids
  do (keys.inherited_id), so each fork has its own.
- **Hidden ranges** (HIDDEN): `{range id: [after, through]}` hides every position p with
  after < p <= through, from the transaction that hid it on (rewind, clear, and deleting a
  message another session still reads).
- **Forked through** (FORKED_THROUGH): the furthest position of this session's own stretch that a
  fork of it reads. A message at or before it is hidden when deleted, never deleted, and so is one
  the session inherits: someone else's partition holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .keys import MESSAGE_PREFIX, MESSAGES_END
from .stored import FORKED_THROUGH, HIDDEN, LINEAGE
from .stored import SessionRecord as Record

MAX_LINEAGE = 16  # stretches a fork may inherit: one per fork of a fork that appended in between
# A clear hides from here: every message position sorts after it.
BEFORE_ANY_MESSAGE = MESSAGE_PREFIX


@dataclass(frozen=True)
class Part:
    """Positions after `low` up to `high` of this session's view, held in `partition`'s history
    (the session's own when `own`)."""

    partition: str
    low: str
    high: str
    own: bool


def lineage(session: Record | None) -> list[tuple[str, str]]:
    return [(source, through) for source, through in (session or {}).get(LINEAGE) or []]


def fork_point(session: Record | None) -> str | None:
    """The last position the session inherits (None: it inherits none)."""
    stretches = lineage(session)
    return stretches[-1][1] if stretches else None


def parts(session: Record) -> list[Part]:
    found, low = [], BEFORE_ANY_MESSAGE
    for source, through in lineage(session):
        found.append(Part(source, low, through, own=False))
        low = through
    found.append(Part(session["id"], low, MESSAGES_END, own=True))
    return found


def part_of(session: Record, position: str) -> Part | None:
    return next((part for part in parts(session) if part.low < position <= part.high), None)


def hidden_ranges(session: Record | None) -> list[tuple[str, str]]:
    """The session's hidden ranges as (after, through), in order."""
    return sorted((after, through) for after, through in ((session or {}).get(HIDDEN) or {}).values())


def is_hidden(position: str, ranges: list[tuple[str, str]]) -> bool:
    return any(after < position <= through for after, through in ranges)


def visible_spans(low: str, high: str, ranges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The inclusive [low, high] key ranges left between hidden ranges (their ends may be hidden
    positions themselves, which the reader skips), in ascending order: one Query each, so a read
    never pages through what a rewind hid."""
    spans, start = [], low
    for after, through in ranges:
        if through < start or after > high:
            continue
        if after >= start:
            spans.append((start, after))
        start = max(start, through)
    spans.append((start, high))
    return [(a, b) for a, b in spans if a <= b]


def shared(session: Record, position: str) -> bool:
    """Whether another session's reads hold the message at `position` of this one's view: it is
    inherited, or a fork of this session reads it. Such a message is hidden, not deleted."""
    point, forked = fork_point(session), session.get(FORKED_THROUGH)
    return (point is not None and position <= point) or (forked is not None and position <= forked)


def _stretches_to(session: Record, point: str) -> list[list[str]]:
    """The stretches of `session`'s view up to `point`, each cut there: [partition, through]."""
    stretches: list[list[str]] = []
    for part in parts(session):
        if part.low >= point:
            break
        stretches.append([part.partition, min(part.high, point)])
    return stretches


def for_fork(session: Record, point: str) -> tuple[list[list[str]], dict[str, list[str]]]:
    """What a fork of `session` at `point` inherits: its lineage (the stretches up to `point`, the
    session's own last if `point` is in it) and the hidden ranges it starts with (the session's,
    cut at `point`; they keep their ids, which are unique across sessions too)."""
    hidden = {
        range_id: [after, min(through, point)]
        for range_id, (after, through) in ((session.get(HIDDEN) or {}).items())
        if after < point
    }
    return _stretches_to(session, point), hidden


def cut_at(session: Record, after: str) -> list[list[str]] | None:
    """The lineage once everything after `after` goes (a rewind, a clear), or None when that
    leaves it as it is: what the session no longer shows it no longer inherits."""
    stretches = lineage(session)
    if not stretches or after >= stretches[-1][1]:
        return None
    return _stretches_to(session, after)  # `after` is before the fork point: no own stretch
