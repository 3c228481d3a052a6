"""POST /sessions/{id}/chat: assemble the context, call the agent's model through the configured
provider (chalicelib/providers), and remember the exchange.

With `remember` (the default) the input messages and the reply are appended in one atomic
append, and only after the model answered: a failed or timed-out model call stores nothing.
"""

from __future__ import annotations

import json
import time

from chalicelib import providers
from chalicelib.rules import context, history, lifecycle, models, tokens, toolcalls
from chalicelib.rules.idempotency import Receipt
from chalicelib.shared import clock, jsonio
from chalicelib.shared.errors import ContextOverBudget, ProviderFailed, ValidationFailed

SETTING_NAMES = frozenset(models.ChatSettings.model_fields)


def chat(
    store, developer: str, session_id: str, chat_input: models.ChatInput, receipt: Receipt | None = None
) -> models.ChatResponse:
    deadline = time.monotonic() + providers.timeout_seconds()
    new = [message.model_dump() for message in chat_input.messages]
    assembled = context.assemble(
        store, developer, session_id, new, recall=chat_input.recall is not False, deadline=deadline
    )
    follows = history.Follows.of(chat_input)
    # before paying for the model: the session takes messages, the precondition holds, each tool
    # result answers a call, and the model is sent no call without its results
    lifecycle.refuse_if_ended(assembled.session)
    history.check_follows(store, developer, assembled.session, follows)
    _refuse_unanswered(assembled, new, chat_input.recall is not False)
    settings = _settings(assembled.agent, chat_input)
    tools, tool_choice = _tools(assembled.agent, chat_input)
    provider = providers.configured()
    completion = provider.complete(
        providers.model_name(assembled.agent.get("model") or models.DEFAULT_MODEL),
        assembled.messages,
        settings,
        timeout=context.remaining(deadline),
        **({"tools": tools, "tool_choice": tool_choice} if tools else {}),
    )
    reply = _reply(completion)
    remember = chat_input.remember is not False and chat_input.record is not False
    prompt_tokens = completion.prompt_tokens if completion.prompt_tokens is not None else assembled.tokens
    completion_tokens = (
        completion.completion_tokens if completion.completion_tokens is not None else tokens.count_message(reply)
    )

    def answer_for(stamped_reply: dict) -> models.ChatResponse:
        return models.ChatResponse(
            id=stamped_reply["id"],
            finish_reason=completion.finish_reason,
            response=[[models.Message.model_validate(stamped_reply)]],
            usage=models.Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    if not remember:
        answer = answer_for({**reply, "id": clock.new_id(), "created_at": clock.now()})
        if receipt:
            store.put_receipt(developer, receipt.record(200, answer))
        return answer
    # Stored only now that the model answered: input, reply and receipt in one transaction (with
    # the session's new updated_at); restamped, and the answer with it, if the session moved on.
    answers: list[models.ChatResponse] = []

    def receipt_for(stamped: history.Stamped) -> dict | None:
        answers.append(answer_for(stamped.messages[-1]))
        return receipt.record(200, answers[-1]) if receipt else None

    history.commit(store, developer, session_id, [*new, reply], receipt_for, session=assembled.session, follows=follows)
    return answers[-1]


def _refuse_unanswered(assembled: context.Assembled, new: list[dict], recall: bool) -> None:
    """The chat's messages must leave no call awaiting results (the model would refuse them), and
    each of its results must reach the model beside its call: ToolCallsPending when calls of the
    session stay unanswered, a 422 when the chat's own messages end with a call, and a 422 when a
    result could not go beside its call (without recall, or past the token budget)."""
    session = assembled.session
    calls = toolcalls.after_messages(session, [("~", message) for message in new]) or {}
    if calls:
        toolcalls.refuse_while_open(session, calls, set(toolcalls.open_calls(session)), "messages")
    if assembled.new_kept:
        return
    if not recall:
        raise ValidationFailed(
            "recall: tool results go to the model beside the call they answer, which is in the history; "
            "send recall true (or leave it out) with tool results. Nothing was stored",
            details=[{"field": "recall", "message": "must not be false with tool results", "type": "tools"}],
        )
    raise ContextOverBudget(
        "the tool call these results answer does not fit in the context beside them within the "
        "session's token_budget; raise token_budget. Nothing was stored",
        details=[{"field": "token_budget", "message": "too small for the call and its results", "type": "budget"}],
    )


def _reply(completion: providers.Completion) -> dict:
    """The model's answer as a history message (its content "" rather than null beside tool
    calls: the julep SDK's models require text), or ProviderFailed if it could not be stored."""
    reply = {"role": "assistant", "content": completion.content, "name": None}
    if completion.tool_calls:
        reply["tool_calls"] = list(completion.tool_calls)
    try:
        models.MessageIn.model_validate(reply)
    except ValueError as error:
        problem = error.errors(include_url=False)[0]["msg"] if hasattr(error, "errors") else str(error)
        raise ProviderFailed(
            f"the model's reply cannot be stored as a history message ({problem}); "
            "lower max_tokens if it was too long. Nothing was stored"
        ) from None
    return reply


def _tools(agent: dict, chat_input: models.ChatInput) -> tuple[list[dict], object]:
    """The tools this call offers: the agent's, with the chat's added (one of the same name
    replacing the agent's), and the tool_choice, which must name one of them."""
    offered = {tool["function"]["name"]: tool for tool in models.tools_of(agent.get("tools") or [])}
    for tool in chat_input.tools or []:
        offered[tool.function.name] = tool.model_dump(exclude_none=True)
    tools = [{key: value for key, value in tool.items() if key != "id"} for tool in offered.values()]
    if len(tools) > models.MAX_TOOLS:
        raise _refused("tools", f"the agent's tools and this chat's are {len(tools)}; at most {models.MAX_TOOLS}")
    choice = chat_input.tool_choice
    if isinstance(choice, models.NamedToolChoice):
        if choice.function.name not in offered:
            raise _refused("tool_choice.function.name", f"{choice.function.name} is not among the tools offered")
        choice = choice.model_dump()
    elif choice == "required" and not tools:
        raise _refused("tool_choice", "required needs tools: the agent has none and this chat gives none")
    return json.loads(jsonio.dumps(tools)), choice


def _refused(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message, "type": "tools"}])


def _settings(agent: dict, chat_input: models.ChatInput) -> dict:
    """The agent's default_settings under the chat's own, validated together: a bad default is a
    422 naming it, not a provider error."""
    # Through JSON, stored numbers (Decimal) become the ints and floats the models expect.
    defaults = json.loads(jsonio.dumps(agent.get("default_settings") or {}))
    merged = {name: value for name, value in defaults.items() if name in SETTING_NAMES and value is not None}
    merged.update(chat_input.model_dump(include=SETTING_NAMES, exclude_none=True))
    try:
        settings = models.ChatSettings.model_validate(merged)
    except ValueError as error:
        raise ValidationFailed(
            "the agent's default_settings hold an invalid generation setting",
            details=[
                {
                    "field": "agent.default_settings." + ".".join(str(p) for p in e["loc"]),
                    "message": e["msg"],
                    "type": e["type"],
                }
                for e in error.errors(include_url=False, include_context=False, include_input=False)
            ],
        ) from None
    return settings.model_dump(exclude_none=True)
