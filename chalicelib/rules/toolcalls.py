"""Tool calls in a history: which calls await a result, and which messages belong together.

The rule (docs/api.md, "Tool calls"): nothing comes between a call and its last result. An
assistant message that makes calls opens them; from then on the history takes only `tool`
messages answering them until every one is answered, and only then anything else. An append or
a chat that brings something else while the session's calls are open is a 409
`tool_calls_pending` naming them; one whose own messages break the rule is a 422. A model is never
sent a call without all of its results.

A session record keeps its open calls (OPEN_CALLS: {call id: position of the assistant message
that made it}), so checking costs no read: an append reads the session anyway and writes it in
the same transaction, conditional on what it read. A second answer, or an answer to a call never
made, is a 422 naming the id.

Removals keep the record true: deleting an assistant message takes its results with it; deleting
a tool result reopens its call only where nothing but that call's results follows (else 409
`tool_result_required`); a rewind keeps the open calls it does not remove and reopens the calls
among the WINDOW messages up to its point whose results it removes, which are then at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.shared.errors import ToolCallsPending, ValidationFailed
from chalicelib.store import OPEN_CALLS, SessionRecord

MAX_OPEN_CALLS = 128
WINDOW = 100  # messages looked through for a call or its results, before or after a removal
RESULTS_SCAN = 1_000  # messages after an assistant message searched for its results


def open_calls(session: SessionRecord) -> dict[str, str]:
    return dict(session.get(OPEN_CALLS) or {})


def uses_tools(session: SessionRecord) -> bool:
    """Whether the session ever made a tool call (only then do removals look for calls)."""
    return OPEN_CALLS in session


def called(message: dict[str, Any]) -> list[str]:
    """The ids of the calls an assistant message makes."""
    return [call["id"] for call in message.get("tool_calls") or []]


def after_messages(
    session: SessionRecord, positioned: list[tuple[str, dict[str, Any]]], first_index: int = 0
) -> dict[str, str] | None:
    """The session's open calls once these messages (in order) are appended, or None when no call
    is open and no message makes or answers one (nothing to write). While calls are open only
    their results may come: anything else is ToolCallsPending when the open calls are the
    session's, a 422 when an earlier message of the same body made them. A `tool` message naming
    no open call is a 422 at `messages.<first_index + n>.tool_call_id`."""
    calls = open_calls(session)
    if not calls and not any(m.get("tool_calls") or m.get("tool_call_id") for _, m in positioned):
        return None
    stored = set(calls)
    for n, (position, message) in enumerate(positioned):
        field = f"messages.{first_index + n}"
        answered = message.get("tool_call_id")
        if answered is not None:
            if answered not in calls:
                field += ".tool_call_id"
                raise ValidationFailed(
                    f"{field}: {answered} answers no tool call of this session awaiting a result; nothing was stored",
                    details=[{"field": field, "message": f"no open tool call {answered}", "type": "unknown_tool_call"}],
                )
            del calls[answered]
        elif calls:
            refuse_while_open(session, calls, stored, field)
        for call_id in called(message):
            calls[call_id] = position
    return _bounded(calls)


def refuse_while_open(session: SessionRecord, calls: dict[str, str], stored: set[str], field: str) -> None:
    """`field` would come between open calls and their results: ToolCallsPending when the session
    made them, else a 422 (the same body made them and did not answer them all)."""
    waiting = sorted(calls, key=lambda call_id: (calls[call_id], call_id))
    if stored & set(calls):
        raise ToolCallsPending(session["id"], waiting, field)
    message = (
        f"the tool calls {', '.join(waiting)} made earlier in these messages await their results: "
        "every result must come right after its call, before any other message"
    )
    raise ValidationFailed(
        f"{field}: {message}; nothing was stored",
        details=[{"field": field, "message": message, "type": "tool_results_required"}],
    )


def reopened(session: SessionRecord, oldest_first: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, str]:
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


def whole_units(oldest_first: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool, list[str]]:
    """What a model may be sent of these messages: every assistant message with calls followed
    right away by a result for each of its calls, and no tool result anywhere else. Returns the
    messages kept; whether a unit or a result was left out before the end (a call or its results
    cut off by the budget or the summary, or a history written before the rule); and the calls
    of a last unit still awaiting results (left out: pending, not lost)."""
    kept: list[dict[str, Any]] = []
    left_out, pending = False, []
    at = 0
    while at < len(oldest_first):
        message = oldest_first[at]
        calls = called(message)
        at += 1
        if not calls:
            if message.get("tool_call_id") is None:
                kept.append(message)
            else:
                left_out = True  # a result whose call is not right before it
            continue
        waiting, results = set(calls), []
        while at < len(oldest_first) and oldest_first[at].get("tool_call_id") in waiting:
            waiting.discard(oldest_first[at]["tool_call_id"])
            results.append(oldest_first[at])
            at += 1
        if not waiting:
            kept += [message, *results]
        elif at == len(oldest_first):
            pending = [call_id for call_id in calls if call_id in waiting]
        else:
            left_out = True
    return kept, left_out, pending
