"""Model providers, chosen by configuration (README "Chat"):

- `SESSIONS_MODEL_PROVIDER=openai`, or just `OPENAI_BASE_URL` / `OPENAI_API_KEY` set: any
  OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LiteLLM);
- `SESSIONS_MODEL_PROVIDER=bedrock`: Amazon Bedrock's Converse API through boto3.

`SESSIONS_MODEL_ALIASES` (a JSON object) maps an agent's `model` to the provider's name for it,
e.g. Julep's default `julep-ai/samantha-1-turbo` to `llama3`. Each provider module is imported
only when a chat needs it, never by `import app`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.shared.errors import ProviderNotConfigured

DEFAULT_TIMEOUT_SECONDS = 20.0  # one model call; a chat's calls together stay inside API Gateway's 29 s
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")
HOW_TO_CONFIGURE = (
    "no model provider is configured: set OPENAI_BASE_URL (and OPENAI_API_KEY) for an "
    "OpenAI-compatible endpoint, or SESSIONS_MODEL_PROVIDER=bedrock for Amazon Bedrock"
)


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str  # one of FINISH_REASONS
    prompt_tokens: int | None = None  # as the provider counted them, when it says
    completion_tokens: int | None = None
    # OpenAI's shape: ({"id", "type": "function", "function": {"name", "arguments"}}, ...)
    tool_calls: tuple[dict[str, Any], ...] = ()


class Provider(Protocol):
    def complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        settings: dict[str, Any],
        timeout: float,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> Completion:
        """Messages are OpenAI's (`{"role", "content", "name"?, "tool_calls"?, "tool_call_id"?}`);
        settings are the chat input's generation settings that were given; `tools` and
        `tool_choice` come only when the call offers tools. Raises ProviderFailed or
        ProviderTimeout."""


_CALL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def call_id(raw: Any) -> str:
    """A provider's tool call id as the history keeps ids (chalicelib/rules/models.CALL_ID): kept
    when it fits, else a stable stand-in (ids only pair calls with results within a session)."""
    text = str(raw or "")
    if _CALL_ID.fullmatch(text):
        return text
    return "call_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


_override: Provider | None = None


def use_provider(provider: Provider | None) -> None:
    """Install a provider for this process (tests); None goes back to the configuration."""
    global _override
    _override = provider


def configured() -> Provider:
    if _override is not None:
        return _override
    choice = os.environ.get("SESSIONS_MODEL_PROVIDER", "").strip().lower()
    if not choice and (os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY")):
        choice = "openai"
    if choice == "openai":
        from .openai_compatible import OpenAICompatible

        return OpenAICompatible.from_environment()
    if choice == "bedrock":
        from .bedrock import Bedrock

        return Bedrock.from_environment()
    if choice:
        raise ProviderNotConfigured(f"SESSIONS_MODEL_PROVIDER={choice!r} is not a provider; use openai or bedrock")
    raise ProviderNotConfigured(HOW_TO_CONFIGURE)


def timeout_seconds() -> float:
    try:
        return float(os.environ.get("SESSIONS_MODEL_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))
    except ValueError:
        return DEFAULT_TIMEOUT_SECONDS


def model_name(model: str) -> str:
    """The provider's name for an agent's model, through SESSIONS_MODEL_ALIASES."""
    try:
        aliases = json.loads(os.environ.get("SESSIONS_MODEL_ALIASES") or "{}")
    except ValueError:
        aliases = {}
    alias = aliases.get(model) if isinstance(aliases, dict) else None
    return alias if isinstance(alias, str) and alias else model
