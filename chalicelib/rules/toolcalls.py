"""Tool calls in a history: which calls await a result, and which messages belong together.

A session record keeps its open calls (OPEN_CALLS: {call id: position of the assistant message
that made it}), so checking that a `tool` message answers a call costs no read: an append reads
the session anyway and writes it in the same transaction, conditional on what it read. A call
opens when an assistant message makes it and closes when a `tool` message answers it; a second
answer, or an answer to a call never made, is a 422 naming the id. At most MAX_OPEN_CALLS stay
open: past that, the oldest can no longer be answered.

Removals keep the record true: deleting a tool result reopens its call (looked for among the
WINDOW messages before it); deleting an assistant message takes its results with it; a rewind
keeps the open calls it does not remove and reopens the calls among the WINDOW messages up to its
point whose results it removes (docs/api.md, "Tool calls").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.shared.errors import ValidationFailed
from chalicelib.store import OPEN_CALLS

MAX_OPEN_CALLS = 128
WINDOW = 100  # messages looked through for a call or its results, before or after a removal
RESULTS_SCAN = 1_000  # messages after an assistant message searched for its results


def open_calls(session: dict[str, Any]) -> dict[str, str]:
    return dict(session.get(OPEN_CALLS) or {})


def uses_tools(session: dict[str, Any]) -> bool:
    """Whether the session ever made a tool call (only then do removals look for calls)."""
    return OPEN_CALLS in session


def called(message: dict[str, Any]) -> list[str]:
    """The ids of the calls an assistant message makes."""
    return [call["id"] for call in message.get("tool_calls") or []]


def after_messages(
    session: dict[str, Any], positioned: list[tuple[str, dict[str, Any]]], first_index: int = 0
) -> dict[str, str] | None:
    """The session's open calls once these messages (in order) are appended, or None when no
    message makes or answers a call (nothing changes, nothing to write). A `tool` message naming
    no open call is a 422 at `messages.<first_index + n>.tool_call_id`."""
    if not any(m.get("tool_calls") or m.get("tool_call_id") for _, m in positioned):
        return None
    calls = open_calls(session)
    for n, (position, message) in enumerate(positioned):
        answered = message.get("tool_call_id")
        if answered is not None:
            if answered not in calls:
                field = f"messages.{first_index + n}.tool_call_id"
                raise ValidationFailed(
                    f"{field}: {answered} answers no tool call of this session awaiting a result; nothing was stored",
                    details=[{"field": field, "message": f"no open tool call {answered}", "type": "unknown_tool_call"}],
                )
            del calls[answered]
        for call_id in called(message):
            calls[call_id] = position
    return _bounded(calls)


def reopened(session: dict[str, Any], oldest_first: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """The open calls of a history that now ends with `oldest_first` (the last messages kept by a
    rewind): those open before and still in it, and every call among these messages whose result
    is not among them."""
    messages = list(oldest_first)
    end = messages[-1][0] if messages else ""
    calls = {call_id: position for call_id, position in open_calls(session).items() if position <= end}
    for position, message in messages:
        for call_id in called(message):
            calls[call_id] = position
        if message.get("tool_call_id") in calls and calls[message["tool_call_id"]] < position:
            del calls[message["tool_call_id"]]
    return _bounded(calls)


def of_history(oldest_first: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """The open calls of a whole history (a fork's copy)."""
    return reopened({}, oldest_first)


def _bounded(calls: dict[str, str]) -> dict[str, str]:
    if len(calls) <= MAX_OPEN_CALLS:
        return calls
    newest = sorted(calls.items(), key=lambda item: item[1])[-MAX_OPEN_CALLS:]
    return dict(newest)


def whole_units(oldest_first: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The messages without the tool results whose call is not among them before (a model refuses
    a result it cannot pair with its call), and whether any was left out."""
    made: set[str] = set()
    kept: list[dict[str, Any]] = []
    for message in oldest_first:
        answered = message.get("tool_call_id")
        if answered is not None and answered not in made:
            continue
        made.update(called(message))
        kept.append(message)
    return kept, len(kept) != len(oldest_first)
