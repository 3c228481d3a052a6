"""Token counts that work offline, behind a small interface.

Exact tokenizers (tiktoken and friends) download their vocabularies at run time, which a locked-
down Lambda cannot do, and every model family tokenizes differently anyway. Budgets therefore
use an estimate that leans high, so a context that fits here fits the model:

- a run of ASCII letters costs one token per 4 letters, rounded up ("hello" 2, "a" 1);
- a run of digits one per 3 digits, rounded up;
- every other non-space character (punctuation, symbols, each CJK or accented character) 1;
- whitespace is free (BPE vocabularies fold it into the next word);
- every message costs MESSAGE_OVERHEAD more, for its role and the chat format's framing.

English prose comes out about 1.2 to 1.5 times what OpenAI's cl100k tokenizer counts. A
deployment that needs exact counts installs another `TokenCounter` with `use_counter`.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

MESSAGE_OVERHEAD = 4
_PIECES = re.compile(r"[A-Za-z]+|[0-9]+|\S")


class TokenCounter(Protocol):
    def count_text(self, text: str) -> int: ...


class EstimatingCounter:
    """The documented estimate above; no data files, no network."""

    def count_text(self, text: str) -> int:
        total = 0
        for piece in _PIECES.findall(text):
            first = piece[0]
            if first.isascii() and first.isalpha():
                total += -(-len(piece) // 4)
            elif first.isascii() and first.isdigit():
                total += -(-len(piece) // 3)
            else:
                total += 1
        return total


_counter: TokenCounter = EstimatingCounter()


def use_counter(counter: TokenCounter) -> None:
    global _counter
    _counter = counter


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of `{"type": "text", "text"}` parts."""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or [])  # (None: no content, beside tool calls)


def count_message(message: dict[str, Any]) -> int:
    """Content, name, and for tool calls the functions' names, arguments and the call ids."""
    calls = message.get("tool_calls") or []
    return (
        _counter.count_text(text_of(message.get("content")))
        + _counter.count_text(message.get("name") or "")
        + sum(
            _counter.count_text(f"{call['id']} {call['function']['name']} {call['function']['arguments']}")
            for call in calls
        )
        + _counter.count_text(message.get("tool_call_id") or "")
        + MESSAGE_OVERHEAD
    )


def count_messages(messages: list[dict[str, Any]]) -> int:
    return sum(count_message(message) for message in messages)


def clip(text: str, tokens: int) -> str:
    """The longest prefix of `text`, cut between pieces, that counts at most `tokens`: a binary
    search over piece boundaries, so any counter works and long texts cost O(n log n)."""
    if _counter.count_text(text) <= tokens:
        return text
    ends = [0] + [match.end() for match in _PIECES.finditer(text)]
    low, high = 0, len(ends) - 1  # ends[low] fits; ends[high] does not
    while high - low > 1:
        middle = (low + high) // 2
        if _counter.count_text(text[: ends[middle]]) <= tokens:
            low = middle
        else:
            high = middle
    return text[: ends[low]].rstrip()
