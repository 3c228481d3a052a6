"""Amazon Bedrock's Converse API through boto3, for deployments in AWS (the Lambda's role needs
bedrock:InvokeModel on the models used). Region from AWS_REGION, as for DynamoDB.

Converse is stricter than chat completions, so messages are adapted (docs/api.md "Chat"):
system messages go to its `system` field, `function` messages are sent as user turns, turns of
the same role in a row are merged into one, and a conversation that would start with the
assistant gets a one-word user turn first.
"""

from __future__ import annotations

import os
from typing import Any

from chalicelib.shared.errors import ProviderFailed, ProviderTimeout

from . import Completion

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
INFERENCE_SETTINGS = {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP", "stop": "stopSequences"}


class Bedrock:
    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def from_environment(cls) -> Bedrock:
        global _client
        if _client is None:
            import boto3
            from botocore.config import Config

            from . import timeout_seconds

            _client = boto3.client(
                "bedrock-runtime",
                config=Config(
                    connect_timeout=2,
                    read_timeout=timeout_seconds(),
                    retries={"mode": "standard", "max_attempts": 1},  # a retry would outlast the gateway
                    region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                ),
            )
        return cls(_client)

    def complete(
        self, model: str, messages: list[dict[str, Any]], settings: dict[str, Any], timeout: float
    ) -> Completion:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

        system, turns = converse_messages(messages)
        request: dict[str, Any] = {"modelId": model, "messages": turns}
        if system:
            request["system"] = system
        inference = {
            wire: settings[name] for name, wire in INFERENCE_SETTINGS.items() if settings.get(name) is not None
        }
        if isinstance(inference.get("stopSequences"), str):
            inference["stopSequences"] = [inference["stopSequences"]]
        if inference:
            request["inferenceConfig"] = inference
        try:
            answer = self.client.converse(**request)
        except (ReadTimeoutError, ConnectTimeoutError):
            raise ProviderTimeout("Amazon Bedrock did not answer in time; nothing was stored") from None
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "Error")
            message = error.response.get("Error", {}).get("Message", "")[:300]
            raise ProviderFailed(f"Amazon Bedrock answered {code}: {message}; nothing was stored") from None
        except BotoCoreError:
            raise ProviderFailed("Amazon Bedrock could not be reached; nothing was stored") from None
        try:
            blocks = answer["output"]["message"]["content"]
            content = "".join(block.get("text", "") for block in blocks)
        except (KeyError, TypeError, AttributeError):
            raise ProviderFailed("Amazon Bedrock's answer held no message; nothing was stored") from None
        usage = answer.get("usage") or {}
        return Completion(
            content=content,
            finish_reason=STOP_REASONS.get(answer.get("stopReason"), "stop"),
            prompt_tokens=usage.get("inputTokens"),
            completion_tokens=usage.get("outputTokens"),
        )


def converse_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """(system blocks, alternating user/assistant turns) for Converse."""
    system: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        text = _text(message["content"])
        if message["role"] == "system":
            system.append({"text": text})
            continue
        role = "assistant" if message["role"] == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].append({"text": text})
        else:
            turns.append({"role": role, "content": [{"text": text}]})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"text": "Continue."}]})
    return system, turns


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content or " "  # Converse refuses empty text blocks
    return "\n".join(part.get("text", "") for part in content) or " "


_client: Any = None
