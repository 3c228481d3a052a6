"""Amazon Bedrock's Converse API through boto3, for deployments in AWS (the Lambda's role needs
bedrock:InvokeModel on the models used). Region from AWS_REGION, as for DynamoDB.

Converse is stricter than chat completions, so messages are adapted (docs/api.md "Chat"):
system messages go to its `system` field, `function` messages are sent as user turns, turns of
the same role in a row are merged into one, and a conversation that would start with the
assistant gets a one-word user turn first. Tools go as `toolConfig`; tool calls as `toolUse`
blocks and their results as `toolResult` blocks. Converse takes those blocks only beside a
`toolConfig`, and has no "none" choice: a call that offers no tools (or says "none") gets the
calls and results of its history as text.
"""

from __future__ import annotations

import json
import os
from typing import Any

from chalicelib.shared.errors import ProviderFailed, ProviderTimeout

from . import Completion, call_id

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
        self,
        model: str,
        messages: list[dict[str, Any]],
        settings: dict[str, Any],
        timeout: float,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> Completion:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

        config = tool_config(tools, tool_choice)
        system, turns = converse_messages(messages, tool_blocks=config is not None)
        request: dict[str, Any] = {"modelId": model, "messages": turns}
        if system:
            request["system"] = system
        if config:
            request["toolConfig"] = config
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
            calls = tuple(
                {
                    "id": call_id(block["toolUse"]["toolUseId"]),
                    "type": "function",
                    "function": {
                        "name": block["toolUse"]["name"],
                        "arguments": json.dumps(block["toolUse"].get("input") or {}, default=str),
                    },
                }
                for block in blocks
                if "toolUse" in block
            )
        except (KeyError, TypeError, AttributeError):
            raise ProviderFailed("Amazon Bedrock's answer held no message; nothing was stored") from None
        usage = answer.get("usage") or {}
        return Completion(
            content=content,
            finish_reason="tool_calls" if calls else STOP_REASONS.get(answer.get("stopReason"), "stop"),
            prompt_tokens=usage.get("inputTokens"),
            completion_tokens=usage.get("outputTokens"),
            tool_calls=calls,
        )


def tool_config(tools: list[dict[str, Any]] | None, tool_choice: Any) -> dict[str, Any] | None:
    """Converse's toolConfig for OpenAI-shaped tools and tool_choice; None for no tools or "none"."""
    if not tools or tool_choice == "none":
        return None
    config: dict[str, Any] = {
        "tools": [
            {
                "toolSpec": {
                    "name": tool["function"]["name"],
                    **({"description": tool["function"]["description"]} if tool["function"].get("description") else {}),
                    "inputSchema": {"json": tool["function"].get("parameters") or {"type": "object", "properties": {}}},
                }
            }
            for tool in tools
        ]
    }
    if tool_choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(tool_choice, dict):
        config["toolChoice"] = {"tool": {"name": tool_choice["function"]["name"]}}
    return config


def converse_messages(
    messages: list[dict[str, Any]], tool_blocks: bool = False
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """(system blocks, alternating user/assistant turns) for Converse; tool calls and results as
    toolUse and toolResult blocks, or as text without `tool_blocks`."""
    system: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "system":
            system.append({"text": _text(message["content"])})
            continue
        role = "assistant" if message["role"] == "assistant" else "user"
        blocks = _blocks(message, tool_blocks)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"text": "Continue."}]})
    return system, turns


def _blocks(message: dict[str, Any], tool_blocks: bool) -> list[dict[str, Any]]:
    calls = message.get("tool_calls") or []
    answered = message.get("tool_call_id")
    if not tool_blocks:
        text = _text(message.get("content"))
        text += "".join(f"\n[calls {c['function']['name']}({c['function']['arguments']}), id {c['id']}]" for c in calls)
        return [{"text": f"[result of call {answered}] {text}" if answered else text}]
    if answered:
        return [{"toolResult": {"toolUseId": answered, "content": [{"text": _text(message.get("content"))}]}}]
    blocks: list[dict[str, Any]] = []
    if message.get("content") or not calls:
        blocks.append({"text": _text(message.get("content"))})
    blocks.extend({"toolUse": {"toolUseId": c["id"], "name": c["function"]["name"], "input": _input(c)}} for c in calls)
    return blocks


def _input(call: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments as the object Converse wants (text that is not one goes whole)."""
    try:
        value = json.loads(call["function"]["arguments"] or "{}")
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"arguments": call["function"]["arguments"]}


def _text(content: Any) -> str:
    if content is None:
        return " "
    if isinstance(content, str):
        return content or " "  # Converse refuses empty text blocks
    return "\n".join(part.get("text", "") for part in content) or " "


_client: Any = None
