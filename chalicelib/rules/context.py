"""Context assembly: the messages a model should get for a session, within its token budget.

In order: one system message (the situation and the agent's instructions, rendered as Jinja
templates when the session says `render_templates`), the session's summary when it has one, the
history after what the summary covers, and the new messages of a chat. Budgets count with
chalicelib/rules/tokens.py. Over the session's `token_budget`, its `context_overflow` decides:

- null: ContextOverBudget (422), nothing read past the point where the budget ran out;
- "truncate": the oldest turns are left out (never the system message or the new messages);
- "adaptive": the oldest turns are folded into the session's summary by the model provider,
  and the summary goes in their place. The newest turns kept fill at most half the room, so
  the next turns do not each need a new summary. The summary always covers every turn up to
  the newest it folded: turns are folded oldest first, as many as one summarizer call takes in;
  any left between those and the kept ones wait for the next context (which says `truncated`).

An assistant message that made tool calls and the tool messages that answered them go in or out
together (rules/toolcalls.py `whole_units`): a call without all its results, or a result whose call
is not right before it, is left out (which makes it `truncated`); the session's calls still awaiting
results are left out too and named in `pending_tool_calls`; a fold never ends between a call and
the results that follow it, and never takes a call still awaiting results. History is read newest first and
only as far as the budget reaches, so the cost follows the budget, not the length of the history.
Design notes: docs/design.md "Context assembly".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from itertools import takewhile
from typing import Any

from chalicelib.rules import models, tokens, toolcalls
from chalicelib.rules.kinds import AGENTS, SESSIONS, USERS
from chalicelib.rules.records import existing, live, wire
from chalicelib.shared import jsonio
from chalicelib.shared.errors import ContextOverBudget
from chalicelib.store import SUMMARY_UNTIL, Record, SessionRecord, Store

CEILING_TOKENS = 1_000_000  # a session with no budget still stops here (a Lambda answer is at most 6 MB)
SUMMARY_MAX_TOKENS = 1_024  # the summary gets at most this, and at most a quarter of the budget
SUMMARY_MIN_TOKENS = 32  # below this there is no room for a useful summary
# Turns one summarizer call takes in: the session's budget, but at least the first (a small chat
# budget is no reason to summarize in slivers) and at most the second (one call stays bounded).
FOLD_MIN_TOKENS, FOLD_MAX_TOKENS = 4_096, 16_384
RESULT_TOKENS = 256  # a tool result folded past the budget, to stay with its call
SUMMARY_PROMPT = (
    "You keep the memory of a conversation between a user and an AI agent. Write a concise summary "
    "of the earlier summary (if any) and the turns below: facts about the user, what was decided, "
    "what is still open. Write it in the third person, at most {words} words, and answer with the "
    "summary only."
)


@dataclass
class Assembled:
    session: SessionRecord
    agent: dict[str, Any]
    user: dict[str, Any] | None
    messages: list[dict[str, Any]]
    tokens: int
    truncated: bool = False
    summarized: bool = False
    pending_tool_calls: list[str] = field(default_factory=list)  # a last call's, awaiting results
    new_kept: bool = True  # every new message is in `messages` (else a tool result lost its call)


def get(store: Store, developer: str, session_id: str) -> models.Context:
    """The context a model would get now, for callers that run their own model."""
    assembled = assemble(store, developer, session_id)
    return models.Context(
        messages=assembled.messages,
        tokens=assembled.tokens,
        token_budget=assembled.session.get("token_budget"),
        context_overflow=assembled.session.get("context_overflow"),
        truncated=assembled.truncated,
        summarized=assembled.summarized,
        pending_tool_calls=assembled.pending_tool_calls,
    )


def assemble(
    store: Store,
    developer: str,
    session_id: str,
    new_messages: list[dict[str, Any]] = (),
    recall: bool = True,
    provider: Any = None,
    deadline: float | None = None,
) -> Assembled:
    session = existing(store, SESSIONS, developer, session_id)
    agent = live(store.get(developer, "agent", session["agent_id"])) or {}
    user = live(store.get(developer, "user", session["user_id"])) if session.get("user_id") else None
    system = _system_messages(session, agent, user)
    new = [_plain(message) for message in new_messages]
    budget = session.get("token_budget")
    budget = int(budget) if budget is not None else None  # stored numbers come back as Decimal
    limit = budget if budget is not None else CEILING_TOKENS
    fixed = tokens.count_messages(system) + tokens.count_messages(new)
    if fixed > limit:
        raise ContextOverBudget(
            f"the system message and the new messages alone need {fixed} tokens; the session's "
            f"token_budget is {limit}. Raise token_budget or shorten the situation or the messages",
            details=[{"field": "token_budget", "message": f"needs at least {fixed}", "type": "budget"}],
        )
    assembled = Assembled(session, agent, user, [], 0)
    if not recall:
        turns, left_out, pending, new_kept = _turns([], new)
        return _finish(assembled, system + turns, left_out, pending=pending, new_kept=new_kept)

    summary = _summary_message(session.get("summary"))
    room = limit - fixed - (tokens.count_message(summary) if summary else 0)
    until = session.get(SUMMARY_UNTIL)
    newest_first = takewhile(
        lambda item: until is None or item[0] > until,
        store.visible_messages(developer, session, descending=True, page_size=20),
    )
    kept, used, first_left_out = [], 0, None
    for position, message in newest_first:
        cost = tokens.count_message(message)
        if used + cost > room:
            first_left_out = (position, message)
            break
        kept.append((position, message))
        used += cost
    if first_left_out is None and room >= 0:
        turns, left_out, pending, new_kept = _turns(kept, new)
        return _finish(
            assembled,
            system + ([summary] if summary else []) + turns,
            truncated=left_out,
            summarized=summary is not None,
            pending=pending,
            new_kept=new_kept,
        )

    overflow = session.get("context_overflow")
    if overflow is None:
        if budget is None:
            raise ContextOverBudget(
                f"the session's context is longer than the {CEILING_TOKENS} tokens a context may hold; "
                "set the session's token_budget and context_overflow (truncate or adaptive)"
            )
        raise ContextOverBudget(
            f"the session's context needs more than its token_budget of {budget} tokens and its "
            "context_overflow is null; set context_overflow to truncate or adaptive, raise "
            "token_budget, or clear the history",
            details=[{"field": "context_overflow", "message": "is null", "type": "budget"}],
        )
    if overflow == "truncate":
        with_summary = [summary] if summary and room >= 0 else []
        turns, _, pending, new_kept = _turns(kept, new)
        return _finish(
            assembled,
            system + with_summary + turns,
            truncated=True,
            summarized=bool(with_summary),
            pending=pending,
            new_kept=new_kept,
        )

    # adaptive: fold what does not fit (and the old summary) into a new summary.
    reserve = min(SUMMARY_MAX_TOKENS, limit // 4, limit - fixed - tokens.MESSAGE_OVERHEAD * 2)
    if reserve < SUMMARY_MIN_TOKENS:
        raise ContextOverBudget(
            f"the session's token_budget of {limit} leaves no room for a summary beside the system "
            f"message and the new messages ({fixed} tokens); raise token_budget"
        )
    half_room = (limit - fixed - reserve - tokens.MESSAGE_OVERHEAD * 2) // 2
    newest_kept, used = [], 0
    for position, message in kept:
        cost = tokens.count_message(message)
        if used + cost > half_room:
            break
        newest_kept.append((position, message))
        used += cost
    # Fold the oldest turns the summary does not cover yet, in order, as far as one summarizer
    # input reaches: the summary then covers every turn up to the newest folded one. Turns
    # between that one and the kept ones (if the input could not take them all) are in neither
    # this time: the answer says truncated, and the next context folds them.
    kept_from = newest_kept[-1][0] if newest_kept else None
    # a call awaiting its results is never folded: its results, when they come, need it beside them
    open_from = min(toolcalls.open_calls(session).values(), default=None)
    stop = min((p for p in (kept_from, open_from) if p is not None), default=None)
    waiting = takewhile(
        lambda item: stop is None or item[0] < stop,
        store.visible_messages(developer, session, after=until, page_size=20),
    )
    folded, clipped, left_out = _fold(waiting, min(max(limit, FOLD_MIN_TOKENS), FOLD_MAX_TOKENS))
    if not folded:  # only the old summary was too long: fold it alone
        text = _summarize(provider, agent, session.get("summary"), [], reserve, deadline)
        new_until = until
    else:
        text = _summarize(provider, agent, session.get("summary"), [m for _, m in folded], reserve, deadline)
        new_until = folded[-1][0]
    # A session changed meanwhile keeps its own state: this answer is still right, and the
    # next one summarizes again (docs/design.md).
    store.write_summary(developer, session_id, session["version"], text, new_until)
    turns, orphans, pending, new_kept = _turns(newest_kept, new)
    return _finish(
        assembled,
        system + [_summary_message(text)] + turns,
        truncated=clipped or left_out or orphans,
        summarized=True,
        pending=pending,
        new_kept=new_kept,
    )


def _finish(
    assembled: Assembled,
    messages: list[dict[str, Any]],
    truncated: bool = False,
    summarized: bool = False,
    pending: list[str] = (),
    new_kept: bool = True,
) -> Assembled:
    assembled.messages = messages
    assembled.tokens = tokens.count_messages(messages)
    assembled.truncated = truncated
    assembled.summarized = summarized
    assembled.pending_tool_calls = list(pending)
    assembled.new_kept = new_kept
    return assembled


def _fold(oldest_first: Any, budget: int) -> tuple[list[tuple[str, dict[str, Any]]], bool, bool]:
    """The oldest waiting turns whose transcript fits `budget` tokens, in order; whether a turn had
    to be cut to fit (a turn is never skipped: the first is always taken, and the results right
    after a folded tool call go with it, cut to RESULT_TOKENS past the budget); and whether turns
    were left waiting."""
    folded: list[tuple[str, dict[str, Any]]] = []
    used, clipped, awaiting = 0, False, set()
    for position, message in oldest_first:
        cost = tokens.count_message(message)
        if used + cost > budget:
            if folded and message.get("tool_call_id") not in awaiting:
                return folded, clipped, True
            room = RESULT_TOKENS if folded else budget - tokens.MESSAGE_OVERHEAD
            text = tokens.clip(tokens.text_of(message.get("content")), room)
            message, cost, clipped = {**message, "content": text}, budget, True
        folded.append((position, message))
        used += cost
        awaiting.discard(message.get("tool_call_id"))
        awaiting.update(toolcalls.called(message))
    return folded, clipped, False


def _summarize(
    provider: Any,
    agent: dict[str, Any],
    old_summary: str | None,
    turns: list[dict[str, Any]],
    reserve: int,
    deadline: float | None,
) -> str:
    """The new summary: the old one and `turns` (oldest first), in at most `reserve` tokens."""
    from chalicelib import providers

    provider = provider or providers.configured()
    transcript = "\n".join(
        f"{turn['role']}{' (' + turn['name'] + ')' if turn.get('name') else ''}: {tokens.text_of(turn.get('content'))}"
        + "".join(
            f" [calls {call['function']['name']}({call['function']['arguments']})]"
            for call in turn.get("tool_calls") or []
        )
        for turn in turns
    )
    request = f"Earlier summary:\n{old_summary or '(none)'}\n\nTurns to add:\n{transcript or '(none)'}"
    completion = provider.complete(
        providers.model_name(agent.get("model") or models.DEFAULT_MODEL),
        [
            {"role": "system", "content": SUMMARY_PROMPT.format(words=max(10, reserve * 2 // 3))},
            {"role": "user", "content": request},
        ],
        {"max_tokens": reserve},
        timeout=remaining(deadline),
    )
    text = tokens.clip(completion.content.strip(), reserve - tokens.MESSAGE_OVERHEAD * 2)
    # The estimate counts whitespace as free, so bytes are bounded too: the session item must
    # stay far below 400 KB whatever the model answers.
    return text.encode("utf-8")[: models.MAX_SUMMARY_BYTES].decode("utf-8", "ignore")


def remaining(deadline: float | None) -> float:
    from chalicelib import providers

    budget = providers.timeout_seconds()
    return budget if deadline is None else max(1.0, min(budget, deadline - time.monotonic()))


def _system_messages(
    session: SessionRecord, agent: dict[str, Any], user: dict[str, Any] | None
) -> list[dict[str, Any]]:
    situation = session.get("situation") or ""
    instructions = list(agent.get("instructions") or [])
    if session.get("render_templates"):
        from chalicelib.rules import templates

        variables = {
            "agent": _public(AGENTS, agent) if agent else None,
            "user": _public(USERS, user) if user else None,
            "session": _public(SESSIONS, session),
        }
        if situation:
            situation = templates.render(situation, variables, "situation")
        instructions = [
            templates.render(text, variables, f"agent.instructions.{n}") for n, text in enumerate(instructions)
        ]
    parts = [situation] if situation else []
    if instructions:
        parts.append("Instructions:\n" + "\n".join(f"- {text}" for text in instructions))
    return [{"role": "system", "content": "\n\n".join(parts)}] if parts else []


def _summary_message(summary: str | None) -> dict[str, Any] | None:
    if not summary:
        return None
    return {"role": "system", "name": "summary", "content": f"Summary of the earlier conversation: {summary}"}


def _public(kind: Any, record: Record) -> dict[str, Any]:
    """A record's public fields as plain JSON values (numbers as int or float, not Decimal)."""
    return json.loads(jsonio.dumps(wire(kind, record)))


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A message as a model takes it (OpenAI's shape)."""
    plain = {"role": message["role"], "content": message.get("content")}
    for name in ("name", "tool_calls", "tool_call_id"):
        if message.get(name):
            plain[name] = message[name]
    return plain


def _turns(
    newest_first: list[tuple[str, dict[str, Any]]], new: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], bool, list[str], bool]:
    """The kept turns oldest first, then the new messages, in whole units only (toolcalls.whole_units):
    the messages, whether a unit was left out, the calls of a last unit awaiting results, and
    whether every new message is among the messages."""
    history = [_plain(message) for _, message in reversed(newest_first)]
    messages, left_out, pending = toolcalls.whole_units(history + new)
    tail = messages[len(messages) - len(new) :] if new else []
    new_kept = len(tail) == len(new) and all(kept is message for kept, message in zip(tail, new))
    return messages, left_out, pending, new_kept
