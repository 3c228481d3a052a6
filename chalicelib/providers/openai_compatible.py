"""Any OpenAI-compatible chat-completions endpoint, over the standard library's HTTP client (no
SDK to import at cold start). Configured with the standard OPENAI_BASE_URL and OPENAI_API_KEY."""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.request
from typing import Any

from chalicelib.shared.errors import ProviderFailed, ProviderTimeout

from . import FINISH_REASONS, Completion, call_id

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Chat input settings that the chat-completions wire takes under the same name.
PASSED_SETTINGS = (
    "max_tokens",
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
    "seed",
    "logit_bias",
    "response_format",
    # not OpenAI's, but vLLM, LiteLLM and Ollama's OpenAI API accept them
    "min_p",
    "repetition_penalty",
    "length_penalty",
)
MAX_ERROR_CHARS = 300
_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|key)[-_][A-Za-z0-9_*.\-]{4,}")


class OpenAICompatible:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key

    @classmethod
    def from_environment(cls) -> OpenAICompatible:
        return cls(os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL, os.environ.get("OPENAI_API_KEY"))

    def complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        settings: dict[str, Any],
        timeout: float,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> Completion:
        body = {
            "model": model,
            "messages": messages,
            **{name: settings[name] for name in PASSED_SETTINGS if settings.get(name) is not None},
        }
        if tools:  # the chat-completions wire takes them as they are
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as error:
            raise ProviderFailed(self._refusal(error)) from None
        except TimeoutError:
            raise ProviderTimeout(
                f"the model provider did not answer within {timeout:.0f} s; nothing was stored"
            ) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, (TimeoutError, socket.timeout)):
                raise ProviderTimeout(
                    f"the model provider did not answer within {timeout:.0f} s; nothing was stored"
                ) from None
            raise ProviderFailed("the model provider could not be reached; nothing was stored") from None
        except OSError:
            raise ProviderFailed("the connection to the model provider failed; nothing was stored") from None
        return self._completion(raw)

    def _refusal(self, error: urllib.error.HTTPError) -> str:
        if error.code in (401, 403):
            # The provider's text can echo part of the key; say only what the operator must fix.
            return (
                f"the model provider refused this service's credentials ({error.code}); "
                "the operator should check OPENAI_API_KEY; nothing was stored"
            )
        try:
            detail = json.loads(error.read() or b"{}").get("error", {})
            detail = detail.get("message", "") if isinstance(detail, dict) else str(detail)
        except (ValueError, AttributeError, OSError):
            detail = ""
        if self.api_key:
            detail = detail.replace(self.api_key, "[redacted]")
        detail = _KEY_LIKE.sub("[redacted]", detail)  # masked echoes such as sk-abc****xyz
        reason = f": {detail[:MAX_ERROR_CHARS]}" if detail else ""
        return f"the model provider answered {error.code}{reason}; nothing was stored"

    @staticmethod
    def _completion(raw: bytes) -> Completion:
        try:
            answer = json.loads(raw)
            choice = answer["choices"][0]
            content = choice["message"].get("content") or ""
            usage = answer.get("usage") or {}
            if not isinstance(content, str):
                raise TypeError("content is not text")
            calls = tuple(
                {
                    "id": call_id(call.get("id")),
                    "type": "function",
                    "function": {
                        "name": call["function"]["name"],
                        "arguments": call["function"].get("arguments") or "",
                    },
                }
                for call in choice["message"].get("tool_calls") or []
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ProviderFailed("the model provider's answer was not a chat completion; nothing was stored") from None
        reason = choice.get("finish_reason")
        return Completion(
            content=content,
            finish_reason="tool_calls" if calls else reason if reason in FINISH_REASONS else "stop",
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            tool_calls=calls,
        )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
