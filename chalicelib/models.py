"""The wire format: one pydantic model per body the API reads or writes.

Input models are strict and refuse unknown fields, so a typo is a 422 naming it rather than a
silently ignored field. Bounds keep every item well under DynamoDB's 400 KB (docs/design.md).
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, PrivateAttr,
                      WithJsonSchema, field_validator)

# Size bounds, in UTF-8 bytes. Their sum stays far below DynamoDB's 400 KB item limit.
MAX_NAME_BYTES = 256
MAX_ABOUT_BYTES = 16 * 1024
MAX_SITUATION_BYTES = 64 * 1024
MAX_INSTRUCTIONS_BYTES = 64 * 1024
MAX_MODEL_BYTES = 256
MAX_OBJECT_BYTES = 64 * 1024          # metadata, default_settings (as compact JSON)
MAX_METADATA_KEY_CHARS = 256
MAX_NESTING = 16                      # DynamoDB allows 32 levels; we leave room
MAX_CONTENT_BYTES = 64 * 1024         # one history message
MAX_MESSAGES_PER_APPEND = 50          # one transaction: 50 x 64 KiB < 4 MB, 51 actions < 100
MAX_CONTENT_PARTS = 100               # text parts of one message's content
MAX_REPLY_TOKENS = 16_384             # a reply must fit one history message (64 KiB)
MAX_TOKEN_BUDGET = 1_000_000_000
DEFAULT_MODEL = "julep-ai/samantha-1-turbo"


def _bounded(limit: int):
    def check(value: str) -> str:
        if len(value.encode("utf-8")) > limit:
            raise ValueError(f"is longer than {limit} bytes (UTF-8)")
        return value
    return AfterValidator(check)


def _storable_number(value: int | Decimal) -> bool:
    """What DynamoDB (and boto3's serializer) can hold exactly: at most 38 digits as written
    (boto3 refuses to round, so 10**40 written out in full is refused while 1E+40 is not), and a
    magnitude from 1E-128 to under 1E+126 (DynamoDB goes to 1E-130; below 1E-128 boto3 rounds)."""
    number = Decimal(value)
    return len(number.as_tuple().digits) <= 38 and -128 <= number.adjusted() <= 125


def _check_tree(value: Any, depth: int = 0) -> None:
    """Every level of a free-form JSON value: DynamoDB refuses empty map keys at any depth and
    numbers it cannot represent, so both are 422s here rather than failed writes later."""
    if depth > MAX_NESTING:
        raise ValueError(f"nests deeper than {MAX_NESTING} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not key or len(key) > MAX_METADATA_KEY_CHARS:
                raise ValueError(f"keys must be 1 to {MAX_METADATA_KEY_CHARS} characters, at every level")
            _check_tree(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_tree(item, depth + 1)
    elif isinstance(value, (int, Decimal)) and not isinstance(value, bool) and not _storable_number(value):
        raise ValueError(f"holds the number {value}: at most 38 digits, magnitude 1E-128 to 1E+125")


def _check_object(value: dict[str, Any]) -> dict[str, Any]:
    _check_tree(value, depth=1)
    if len(json.dumps(value, default=str, ensure_ascii=False).encode("utf-8")) > MAX_OBJECT_BYTES:
        raise ValueError(f"is larger than {MAX_OBJECT_BYTES} bytes as JSON")
    return value


def _check_instructions(value: str | list[str]) -> list[str]:
    """Julep accepts one string or a list; we always store the list."""
    items = [value] if isinstance(value, str) else value
    if sum(len(item.encode("utf-8")) for item in items) > MAX_INSTRUCTIONS_BYTES:
        raise ValueError(f"are longer than {MAX_INSTRUCTIONS_BYTES} bytes (UTF-8) in all")
    return items


Name = Annotated[str, _bounded(MAX_NAME_BYTES)]
About = Annotated[str, _bounded(MAX_ABOUT_BYTES)]
Situation = Annotated[str, _bounded(MAX_SITUATION_BYTES)]
ModelName = Annotated[str, Field(min_length=1), _bounded(MAX_MODEL_BYTES)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_object)]
Instructions = Annotated[str | list[str], AfterValidator(_check_instructions)]
Unsupported = Annotated[list[Any], Field(max_length=0, description="not supported by this service; must be empty")]
ContextOverflow = Literal["truncate", "adaptive"]
TokenBudget = Annotated[int, Field(gt=0, le=MAX_TOKEN_BUDGET)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Versioned(_Output):
    """A resource's version rides along to become the answer's ETag; it is never in the body."""
    _version: int | None = PrivateAttr(default=None)


# --- agents ---------------------------------------------------------------------------------

class AgentCreate(_Input):
    name: Name
    about: About | None = None
    instructions: Instructions | None = None
    model: ModelName | None = None
    default_settings: JsonObject | None = None
    metadata: JsonObject | None = None
    tools: Unsupported | None = None
    docs: Unsupported | None = None


class AgentPatch(_Input):
    name: Name | None = None
    about: About | None = None
    instructions: Instructions | None = None
    model: ModelName | None = None
    default_settings: JsonObject | None = None
    metadata: JsonObject | None = None


class AgentReplace(AgentPatch):
    name: Name
    about: About


class Agent(_Versioned):
    id: str
    name: str
    about: str | None = None
    instructions: list[str] = []
    model: str = DEFAULT_MODEL
    default_settings: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    created_at: str
    updated_at: str


# --- users ----------------------------------------------------------------------------------

class UserCreate(_Input):
    name: Name | None = None
    about: About | None = None
    metadata: JsonObject | None = None
    docs: Unsupported | None = None


class UserPatch(_Input):
    name: Name | None = None
    about: About | None = None
    metadata: JsonObject | None = None


class UserReplace(UserPatch):
    name: Name
    about: About


class User(_Versioned):
    id: str
    name: str | None = None
    about: str | None = None
    metadata: dict[str, Any] = {}
    created_at: str
    updated_at: str


# --- sessions -------------------------------------------------------------------------------

class SessionCreate(_Input):
    agent_id: str
    user_id: str | None = None
    situation: Situation | None = None
    metadata: JsonObject | None = None
    render_templates: bool | None = None
    token_budget: TokenBudget | None = None
    context_overflow: ContextOverflow | None = None


class SessionPatch(_Input):
    situation: Situation | None = None
    metadata: JsonObject | None = None
    render_templates: bool | None = None
    token_budget: TokenBudget | None = None
    context_overflow: ContextOverflow | None = None


class SessionReplace(SessionPatch):
    situation: Situation


class Session(_Versioned):
    id: str
    agent_id: str
    user_id: str | None = None
    situation: str | None = None
    summary: str | None = None
    metadata: dict[str, Any] = {}
    render_templates: bool = False
    token_budget: int | None = None
    context_overflow: ContextOverflow | None = None
    created_at: str
    updated_at: str


# --- history ---------------------------------------------------------------------------------

def _content(value: Any) -> str | list[dict[str, str]]:
    """A string, or a list of text parts as the chat-completions wire has them; one error for
    the field either way. Images are not stored."""
    if isinstance(value, str):
        size = len(value.encode("utf-8"))
    elif isinstance(value, list) and 1 <= len(value) <= MAX_CONTENT_PARTS:
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ValueError('parts must be {"type": "text", "text": ...}; images and other parts are not supported')
            if set(part) != {"type", "text"} or not isinstance(part["text"], str):
                raise ValueError('a text part has exactly "type" and "text" (a string)')
        size = sum(len(part["text"].encode("utf-8")) for part in value)
    else:
        raise ValueError(f"must be a string or a list of 1 to {MAX_CONTENT_PARTS} text parts")
    if size > MAX_CONTENT_BYTES:
        raise ValueError(f"is longer than {MAX_CONTENT_BYTES} bytes (UTF-8)")
    return value


Content = Annotated[Any, PlainValidator(_content), WithJsonSchema({"anyOf": [
    {"type": "string"},
    {"type": "array", "minItems": 1, "maxItems": MAX_CONTENT_PARTS, "items": {
        "type": "object", "required": ["type", "text"], "additionalProperties": False,
        "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}}]})]
Role = Literal["system", "user", "assistant", "function"]


class MessageIn(_Input):
    role: Role
    content: Content
    name: Name | None = None


class HistoryAppend(_Input):
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_MESSAGES_PER_APPEND)]


class Message(_Output):
    id: str
    role: str
    content: str | list[dict[str, Any]]
    name: str | None = None
    created_at: str


# --- chat -----------------------------------------------------------------------------------

def _plain_number(value: Any) -> Any:
    """JSON fractions arrive as Decimal (chalicelib/jsonio.py); settings are plain floats."""
    return float(value) if isinstance(value, Decimal) else value


Float = Annotated[float, BeforeValidator(_plain_number)]
Penalty = Annotated[Float, Field(ge=-2, le=2)]


class ResponseFormat(_Input):
    type: Literal["text", "json_object"] | None = None


class ChatSettings(_Input):
    """Generation settings: the chat input's, over the agent's `default_settings`. They go to the
    model provider; those a provider has no use for it ignores (docs/api.md)."""
    max_tokens: Annotated[int, Field(ge=1, le=MAX_REPLY_TOKENS)] | None = None
    temperature: Annotated[Float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[Float, Field(ge=0, le=1)] | None = None
    min_p: Annotated[Float, Field(ge=0, le=1)] | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    repetition_penalty: Annotated[Float, Field(ge=0, le=2)] | None = None
    length_penalty: Annotated[Float, Field(ge=0, le=2)] | None = None
    stop: str | Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(max_length=4)] | None = None
    seed: Annotated[int, Field(ge=-(2**63), lt=2**63)] | None = None
    logit_bias: Annotated[dict[str, Annotated[int, Field(ge=-100, le=100)] | None], Field(max_length=300)] | None = None
    response_format: ResponseFormat | None = None
    preset: Literal["problem_solving", "conversational", "fun", "prose", "creative", "business",
                    "deterministic", "code", "multilingual"] | None = None
    stream: Annotated[bool, Field(description="streaming is not supported; must be false")] | None = None

    @field_validator("stream")
    @classmethod
    def _no_streaming(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("streaming is not supported by this service; send stream false or leave it out")
        return value


class ChatInput(ChatSettings):
    """Julep's chat input."""
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_MESSAGES_PER_APPEND - 1)]
    remember: bool | None = None       # store the input and the reply (default true)
    recall: bool | None = None         # include the stored history in the context (default true)
    record: bool | None = None         # Julep's older name for remember
    tools: Unsupported | None = None
    tool_choice: None = None


class Usage(_Output):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class DocIds(_Output):
    agent_doc_ids: list[str] = []
    user_doc_ids: list[str] = []


class ChatResponse(_Output):
    id: str
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
    response: list[list[Message]]
    usage: Usage
    jobs: list[str] = []
    doc_ids: DocIds = DocIds()


class ContextMessage(_Output):
    role: str
    content: str | list[dict[str, Any]]
    name: str | None = None


class Context(_Output):
    """GET /sessions/{id}/context: what a model should get for this session, within its budget."""
    messages: list[ContextMessage]
    tokens: int
    token_budget: int | None
    context_overflow: ContextOverflow | None
    truncated: bool        # older turns were left out
    summarized: bool       # the session's summary stands in for older turns


# --- answers --------------------------------------------------------------------------------

class Created(_Output):
    id: str
    created_at: str
    jobs: list[str] = []


class Updated(_Versioned):
    id: str
    updated_at: str
    jobs: list[str] = []


class Deleted(_Output):
    id: str
    deleted_at: str
