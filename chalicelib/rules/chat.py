"""POST /sessions/{id}/chat: assemble the context, call the agent's model through the configured
provider (chalicelib/providers), and remember the exchange.

With `remember` (the default) the input messages and the reply are appended in one atomic
append, and only after the model answered: a failed or timed-out model call stores nothing.
"""

from __future__ import annotations

import json
import time

from chalicelib import providers
from chalicelib.rules import context, history, models, tokens, validation
from chalicelib.rules.idempotency import Receipt
from chalicelib.shared import clock, jsonio
from chalicelib.shared.errors import ProviderFailed, ValidationFailed

SETTING_NAMES = frozenset(models.ChatSettings.model_fields)


def chat(store, developer: str, session_id: str, body: dict, receipt: Receipt | None = None) -> models.ChatResponse:
    chat_input = validation.parse(models.ChatInput, body)
    deadline = time.monotonic() + providers.timeout_seconds()
    new = [message.model_dump() for message in chat_input.messages]
    assembled = context.assemble(
        store, developer, session_id, new, recall=chat_input.recall is not False, deadline=deadline
    )
    follows = history.Follows.of(chat_input)
    history.check_follows(store, developer, assembled.session, follows)  # before paying for the model
    settings = _settings(assembled.agent, chat_input)
    provider = providers.configured()
    completion = provider.complete(
        providers.model_name(assembled.agent.get("model") or models.DEFAULT_MODEL),
        assembled.messages,
        settings,
        timeout=context.remaining(deadline),
    )
    reply = {"role": "assistant", "content": completion.content, "name": None}
    if len(completion.content.encode("utf-8")) > models.MAX_CONTENT_BYTES:
        raise ProviderFailed(
            f"the model's reply is longer than a history message may be "
            f"({models.MAX_CONTENT_BYTES} bytes); lower max_tokens. Nothing was stored"
        )
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

    def receipt_for(stamped: list[dict]) -> dict | None:
        answers.append(answer_for(stamped[-1]))
        return receipt.record(200, answers[-1]) if receipt else None

    history.commit(store, developer, session_id, [*new, reply], receipt_for, session=assembled.session, follows=follows)
    return answers[-1]


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
