"""The wire format: one pydantic model per body the API reads or writes.

Input models are strict and refuse unknown fields, so a typo is a 422 naming it rather than a
silently ignored field. Bounds keep every item under DynamoDB's 400 KB and every transaction
under 100 actions and 4 MB, with every field at its limit at once (docs/reliability.md, "Limits").
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context as DecimalContext
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from chalicelib.shared import clock, jsonio

# Bounds, in UTF-8 bytes unless said otherwise. Together they keep every item under DynamoDB's
# 400 KB and every transaction under 100 actions and 4 MB, with every field at its limit at once:
# the arithmetic is in docs/reliability.md ("Limits"), and tests/test_limits.py measures it.
MAX_NAME_BYTES = 256
MAX_ABOUT_BYTES = 16 * 1024
MAX_SITUATION_BYTES = 64 * 1024
MAX_INSTRUCTIONS_BYTES = 64 * 1024  # all of an agent's instructions together
MAX_INSTRUCTIONS = 256  # items of the instructions list (each costs a byte even when empty)
MAX_MODEL_BYTES = 256
MAX_OBJECT_BYTES = 64 * 1024  # metadata, default_settings (as compact JSON, numbers as written)
MAX_OBJECT_KEYS = 256  # keys of one object in metadata or default_settings, at any level
MAX_STRING_VALUE_BYTES = 16 * 1024  # one string value in metadata or default_settings, at any level
MAX_METADATA_KEY_CHARS = 256
MAX_NESTING = 16  # DynamoDB allows 32 levels; we leave room
MAX_NUMBER_DIGITS = 38  # DynamoDB's precision; magnitudes 1E-128 to under 1E+126 (boto3's range)
MAX_CONTENT_BYTES = 64 * 1024  # one history message
MAX_MESSAGES_PER_APPEND = 50  # one transaction: 50 x 64 KiB < 4 MB, 51 actions < 100
MAX_CONTENT_PARTS = 100  # text parts of one message's content
MAX_REPLY_TOKENS = 16_384  # a reply must fit one history message (64 KiB)
MAX_SUMMARY_BYTES = 16 * 1024  # a session's stored summary (chalicelib/rules/context.py clips to it)
MAX_TOKEN_BUDGET = 1_000_000_000
MAX_TTL_SECONDS = 10 * 366 * 24 * 3600  # retention: 1 second to 10 years (docs/api.md, "Retention")
# Tools: an agent's are stored as one compact JSON string (a JSON Schema nests deeply, and as a
# DynamoDB map it could take twice its JSON size); 32 KiB keeps the agent item under 400 KB.
MAX_TOOLS = 128  # an agent's, and a chat's together with its agent's (OpenAI's limit per request)
MAX_TOOLS_BYTES = 32 * 1024  # an agent's tools, or a chat's, as compact JSON
MAX_TOOL_CALLS = 32  # calls in one assistant message
FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's and Bedrock's rule for function names
CALL_ID = r"^[A-Za-z0-9_-]{1,64}$"  # Bedrock's rule for toolUseId; OpenAI's call ids fit it
DEFAULT_MODEL = "julep-ai/samantha-1-turbo"


def _limit_error(kind: str, message: str, loc: tuple[str | int, ...] = (), value: Any = None) -> ValidationError:
    """A 422 detail at `loc` under the field being validated (pydantic prefixes the field), its
    `type` naming the limit and its message the numbers. `message` is used as it is: no
    placeholders, so user text in it (a key in a path) cannot be read as one."""
    return ValidationError.from_exception_data(
        "limit",
        [InitErrorDetails(type=PydanticCustomError(kind, "{message}", {"message": message}), loc=loc, input=value)],
    )


def _path(field: str, loc: tuple[str | int, ...]) -> str:
    return ".".join([field, *map(str, loc)])


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _bounded(limit: int):
    def check(value: str, info: ValidationInfo) -> str:
        size = _utf8_size(value)
        if size > limit:
            raise _limit_error("string_too_long", f"{info.field_name} is {size} bytes (UTF-8); at most {limit}")
        return value

    return AfterValidator(check)


def _storable_number(value: int | Decimal) -> int | Decimal | None:
    """The number as DynamoDB (through boto3's serializer) stores it exactly, or None.

    At most 38 digits, magnitude 1E-128 to under 1E+126 (DynamoDB goes to 1E-130; below 1E-128
    boto3 rounds). An integer counts its digits as written: boto3 refuses to round, so 10**40
    written out in full is refused while 1E+40 is not. A Decimal counts significant digits:
    DynamoDB hands 1E+40 back as forty-one digits, and such a number read back and written again
    (a PATCH merging into stored metadata) must stay storable, so it is given back as 1E+40."""
    number = Decimal(value)
    if not number.is_finite() or not -128 <= number.adjusted() <= 125:
        return None
    digits = len(number.as_tuple().digits)
    if digits <= MAX_NUMBER_DIGITS:
        return value
    if isinstance(value, Decimal):
        significant = number.normalize(DecimalContext(prec=digits))  # drops trailing zeros, never rounds
        if len(significant.as_tuple().digits) <= MAX_NUMBER_DIGITS:
            return significant
    return None


def _checked_tree(value: Any, field: str, loc: tuple[str | int, ...], depth: int) -> Any:
    """Every level of a free-form JSON value, against the limits per level: nesting, keys per
    object and their length (DynamoDB refuses empty map keys at any depth), one string's size,
    and numbers DynamoDB can hold. Any of them past its limit is a 422 at the offending place.
    The value comes back as it was, but for numbers re-written in their storable form."""
    if depth > MAX_NESTING:
        raise _limit_error(
            "too_deeply_nested", f"{_path(field, loc)} nests {depth} levels deep; at most {MAX_NESTING}", loc
        )
    if isinstance(value, dict):
        if len(value) > MAX_OBJECT_KEYS:
            raise _limit_error(
                "too_many_keys", f"{_path(field, loc)} has {len(value)} keys; at most {MAX_OBJECT_KEYS} per object", loc
            )
        changed = None
        for key, item in value.items():
            if not key or len(key) > MAX_METADATA_KEY_CHARS:
                raise _limit_error(
                    "key_length",
                    f"{_path(field, loc)} has a key of {len(key)} characters; "
                    f"keys are 1 to {MAX_METADATA_KEY_CHARS} characters",
                    loc,
                )
            checked = _checked_tree(item, field, (*loc, key), depth + 1)
            if checked is not item:
                changed = changed or dict(value)
                changed[key] = checked
        return value if changed is None else changed
    if isinstance(value, list):
        checked_items = [_checked_tree(item, field, (*loc, n), depth + 1) for n, item in enumerate(value)]
        return value if all(a is b for a, b in zip(checked_items, value)) else checked_items
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE_BYTES // 4:
            size = _utf8_size(value)
            if size > MAX_STRING_VALUE_BYTES:
                raise _limit_error(
                    "string_too_long",
                    f"{_path(field, loc)} is a string of {size} bytes (UTF-8); at most {MAX_STRING_VALUE_BYTES}",
                    loc,
                )
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        storable = _storable_number(value)
        if storable is None:
            number = Decimal(value)
            raise _limit_error(
                "number_not_storable",
                f"{_path(field, loc)} holds a number of "
                f"{len(number.as_tuple().digits)} digits, magnitude 1E{number.adjusted():+d}; "
                f"DynamoDB stores at most {MAX_NUMBER_DIGITS} digits, magnitudes 1E-128 to "
                f"under 1E+126",
                loc,
            )
        return storable
    return value


def _check_object(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    field = info.field_name or "object"
    value = _checked_tree(value, field, (), depth=1)
    size = len(jsonio.dumps(value).encode("utf-8"))
    if size > MAX_OBJECT_BYTES:
        raise _limit_error("object_too_large", f"{field} is {size} bytes as JSON; at most {MAX_OBJECT_BYTES}")
    return value


def _check_instructions(value: str | list[str]) -> list[str]:
    """Julep accepts one string or a list; we always store the list."""
    items = [value] if isinstance(value, str) else value
    if len(items) > MAX_INSTRUCTIONS:
        raise _limit_error("too_many_items", f"instructions has {len(items)} items; at most {MAX_INSTRUCTIONS}")
    size = sum(_utf8_size(item) for item in items)
    if size > MAX_INSTRUCTIONS_BYTES:
        raise _limit_error(
            "string_too_long", f"instructions are {size} bytes (UTF-8) in all; at most {MAX_INSTRUCTIONS_BYTES}"
        )
    return items


Name = Annotated[str, _bounded(MAX_NAME_BYTES)]
About = Annotated[str, _bounded(MAX_ABOUT_BYTES)]
Situation = Annotated[str, _bounded(MAX_SITUATION_BYTES)]
ModelName = Annotated[str, Field(min_length=1), _bounded(MAX_MODEL_BYTES)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_object)]
Instructions = Annotated[str | list[str], AfterValidator(_check_instructions)]
Unsupported = Annotated[list[Any], Field(max_length=0, description="not supported by this service; must be empty")]
ContextOverflow = Literal["truncate", "adaptive"]
# Seconds from now until the record expires; on PATCH and PUT, null clears it (docs/api.md).
Ttl = Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)]


def _expiry_text(value: Any) -> Any:
    """A stored expiry (epoch seconds, the table's TTL attribute) as RFC 3339."""
    if value is None or isinstance(value, str):
        return value
    return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


ExpiresAt = Annotated[str | None, BeforeValidator(_expiry_text)]
TokenBudget = Annotated[int, Field(gt=0, le=MAX_TOKEN_BUDGET)]


# defer_build: a model's validator and serializer are built when it is first used, not when this
# module is imported, so a process pays only for the models its requests use (docs/performance.md,
# "Cold start"). What a model is (its fields, its JSON schema) does not change.


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


# --- tools ----------------------------------------------------------------------------------

FunctionName = Annotated[str, Field(pattern=FUNCTION_NAME, description="1 to 64 of a-z, A-Z, 0-9, _ and -")]
CallId = Annotated[str, Field(pattern=CALL_ID, description="a tool call's id: 1 to 64 of a-z, A-Z, 0-9, _ and -")]


class FunctionDef(_Input):
    name: FunctionName
    description: About | None = None
    parameters: JsonObject | None = None  # a JSON Schema of the arguments


class ToolDef(_Input):
    """Julep v0.3's tool: a function the model may call. `id` is kept when given (the SDK's `Tool`
    carries one)."""

    type: Literal["function"]
    function: FunctionDef
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


def _check_tools(tools: list[ToolDef], info: ValidationInfo) -> list[ToolDef]:
    """Names unique in the list; at most MAX_TOOLS_BYTES as compact JSON."""
    field = info.field_name or "tools"
    seen: set[str] = set()
    for n, tool in enumerate(tools):
        if tool.function.name in seen:
            raise _limit_error(
                "duplicate_name",
                f"{field}.{n}.function.name: {tool.function.name} is named twice; function names are unique",
                (n, "function", "name"),
            )
        seen.add(tool.function.name)
    size = len(_tools_json(tools).encode("utf-8"))
    if size > MAX_TOOLS_BYTES:
        raise _limit_error("object_too_large", f"{field} are {size} bytes as JSON; at most {MAX_TOOLS_BYTES}")
    return tools


def _tools_json(tools: list[ToolDef]) -> str:
    return jsonio.dumps([tool.model_dump(exclude_none=True) for tool in tools])


def tools_of(value: Any) -> Any:
    """An agent's tools as stored (one JSON string) back to the list."""
    return jsonio.loads(value, "stored tools") if isinstance(value, str) else value


Tools = Annotated[list[ToolDef], Field(max_length=MAX_TOOLS), AfterValidator(_check_tools)]
# An agent's tools are stored as their compact JSON (see MAX_TOOLS_BYTES): the field's value
# after validation is that string, which records.py writes as it writes any field.
StoredTools = Annotated[Tools, AfterValidator(_tools_json)]
ToolsOut = Annotated[list[dict[str, Any]], BeforeValidator(tools_of)]


class NamedFunction(_Input):
    name: FunctionName


class NamedToolChoice(_Input):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


# --- what a create, a patch and a replace take: one declaration per resource -------------------

# How a field of a resource is written (the three input models are built from one list, so the
# bodies of POST, PATCH and PUT cannot drift apart):
REQUIRED = "required"  # needed on create and on replace; optional on patch
ON_REPLACE = "on replace"  # needed on replace only
OPTIONAL = "optional"  # optional everywhere
ON_CREATE = "on create"  # taken on create only (optional there)
NEEDED_ON_CREATE = "needed on create"  # taken on create only, and needed there


ALWAYS_IMMUTABLE = ("id", "created_at", "updated_at")


def _writes(
    resource: str, *fields: tuple[str, Any, str], immutable: tuple[str, ...] = ()
) -> tuple[type[_Input], type[_Input], type[_Input]]:
    """The `<resource>Create`, `Patch` and `Replace` input models from (name, type, rule) in order:
    every field absent from a body is None. A patch or replace that names one of the resource's
    `immutable` fields (or id, created_at, updated_at) is refused by name (rules/validation.py
    `parse`), rather than as an unknown field."""

    def model(name: str, rules: dict[str, bool | None]) -> type[_Input]:
        """`rules`: whether each rule's fields are needed in this body (None: not taken)."""
        chosen = {
            field: ((kind, ...) if rules[rule] else (kind | None, None))
            for field, kind, rule in fields
            if rules[rule] is not None
        }
        return create_model(f"{resource}{name}", __base__=_Input, __module__=__name__, **chosen)

    create = model(
        "Create", {REQUIRED: True, ON_REPLACE: False, OPTIONAL: False, ON_CREATE: False, NEEDED_ON_CREATE: True}
    )
    patch = model(
        "Patch", {REQUIRED: False, ON_REPLACE: False, OPTIONAL: False, ON_CREATE: None, NEEDED_ON_CREATE: None}
    )
    replace = model(
        "Replace", {REQUIRED: True, ON_REPLACE: True, OPTIONAL: False, ON_CREATE: None, NEEDED_ON_CREATE: None}
    )
    patch.immutable = replace.immutable = frozenset((*ALWAYS_IMMUTABLE, *immutable))
    return create, patch, replace


# --- agents ---------------------------------------------------------------------------------

AgentCreate, AgentPatch, AgentReplace = _writes(
    "Agent",
    ("name", Name, REQUIRED),
    ("about", About, ON_REPLACE),
    ("instructions", Instructions, OPTIONAL),
    ("model", ModelName, OPTIONAL),
    ("default_settings", JsonObject, OPTIONAL),
    ("metadata", JsonObject, OPTIONAL),
    ("tools", StoredTools, OPTIONAL),  # a patch or replace replaces the agent's tools whole
    ("docs", Unsupported, ON_CREATE),
    ("ttl", Ttl, OPTIONAL),
)


class Agent(_Output):
    id: str
    name: str
    about: str | None = None
    instructions: list[str] = []
    model: str = DEFAULT_MODEL
    default_settings: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    tools: ToolsOut = []
    expires_at: ExpiresAt = None
    created_at: str
    updated_at: str


# --- users ----------------------------------------------------------------------------------


UserCreate, UserPatch, UserReplace = _writes(
    "User",
    ("name", Name, ON_REPLACE),
    ("about", About, ON_REPLACE),
    ("metadata", JsonObject, OPTIONAL),
    ("docs", Unsupported, ON_CREATE),
    ("ttl", Ttl, OPTIONAL),
)


class User(_Output):
    id: str
    name: str | None = None
    about: str | None = None
    metadata: dict[str, Any] = {}
    expires_at: ExpiresAt = None
    created_at: str
    updated_at: str


# --- sessions -------------------------------------------------------------------------------


SessionCreate, SessionPatch, SessionReplace = _writes(
    "Session",
    ("agent_id", str, NEEDED_ON_CREATE),
    ("user_id", str, ON_CREATE),
    ("situation", Situation, ON_REPLACE),
    ("metadata", JsonObject, OPTIONAL),
    ("render_templates", bool, OPTIONAL),
    ("token_budget", TokenBudget, OPTIONAL),
    ("context_overflow", ContextOverflow, OPTIONAL),
    ("ttl", Ttl, OPTIONAL),
    immutable=("agent_id", "user_id", "summary", "status", "ended_at"),
)


class Session(_Output):
    id: str
    agent_id: str
    user_id: str | None = None
    situation: str | None = None
    summary: str | None = None
    metadata: dict[str, Any] = {}
    render_templates: bool = False
    token_budget: int | None = None
    context_overflow: ContextOverflow | None = None
    status: Literal["active", "ended"] = "active"  # POST /sessions/{id}/end; never back
    ended_at: str | None = None
    expires_at: ExpiresAt = None
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
                raise ValueError(
                    'parts must be {"type": "text", "text": ...}; images and other parts are not supported'
                )
            if set(part) != {"type", "text"} or not isinstance(part["text"], str):
                raise ValueError('a text part has exactly "type" and "text" (a string)')
        size = sum(len(part["text"].encode("utf-8")) for part in value)
    else:
        raise ValueError(f"must be a string or a list of 1 to {MAX_CONTENT_PARTS} text parts")
    if size > MAX_CONTENT_BYTES:
        raise ValueError(f"is longer than {MAX_CONTENT_BYTES} bytes (UTF-8)")
    return value


Content = Annotated[
    Any,
    PlainValidator(_content),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_CONTENT_PARTS,
                    "items": {
                        "type": "object",
                        "required": ["type", "text"],
                        "additionalProperties": False,
                        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                    },
                },
            ]
        }
    ),
]
Role = Literal["system", "user", "assistant", "function", "tool"]


class CalledFunction(_Input):
    name: FunctionName
    arguments: str  # as the model wrote them: JSON text, not checked (models do write bad JSON)


class ToolCall(_Input):
    id: CallId
    type: Literal["function"]
    function: CalledFunction


def _text_bytes(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return _utf8_size(content)
    return sum(_utf8_size(part["text"]) for part in content)


class MessageIn(_Input):
    """A history message in OpenAI's forms: an assistant message may carry `tool_calls` (and then
    its content may be null); a `tool` message answers one call by its `tool_call_id`. Julep's
    `function` role keeps working. Content, call names, arguments and ids together are at most
    MAX_CONTENT_BYTES."""

    role: Role
    content: Content | None = None
    name: Name | None = None
    tool_calls: Annotated[list[ToolCall], Field(min_length=1, max_length=MAX_TOOL_CALLS)] | None = None
    tool_call_id: CallId | None = None

    @model_validator(mode="after")
    def _tool_forms(self) -> MessageIn:
        if self.tool_calls is not None and self.role != "assistant":
            raise _limit_error("tool_calls_role", "only an assistant message carries tool_calls", ("tool_calls",))
        if self.role == "tool" and self.tool_call_id is None:
            raise _limit_error("missing", "a tool message names the call it answers in tool_call_id", ("tool_call_id",))
        if self.tool_call_id is not None and self.role != "tool":
            raise _limit_error("tool_call_id_role", "only a tool message carries tool_call_id", ("tool_call_id",))
        if self.content is None and self.tool_calls is None:
            raise _limit_error("missing", "content is required (it may be null only beside tool_calls)", ("content",))
        calls = self.tool_calls or []
        ids = [call.id for call in calls]
        if len(set(ids)) != len(ids):
            raise _limit_error("duplicate_id", "tool_calls has an id twice; call ids are unique", ("tool_calls",))
        size = (
            _text_bytes(self.content)
            + sum(len(c.id) + len(c.function.name) + _utf8_size(c.function.arguments) for c in calls)
            + len(self.tool_call_id or "")
        )
        if size > MAX_CONTENT_BYTES:
            raise _limit_error(
                "string_too_long",
                f"the message's content, tool calls and ids are {size} bytes (UTF-8); at most {MAX_CONTENT_BYTES}",
                ("content",),
            )
        return self


class _WithoutAbsentToolFields(_Output):
    """Answers in OpenAI's shape: `tool_calls` and `tool_call_id` appear only where they belong."""

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name in ("tool_calls", "tool_call_id"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


class MetadataFilter(_Input):
    """A list's `metadata_filter`, held to the rules of the metadata it is compared with."""

    metadata_filter: JsonObject


def _message_id(value: str) -> str:
    if not clock.is_uuid(value):
        raise PydanticCustomError("uuid", "must be a message id (a UUID)")
    return clock.canonical_id(value)


# `after`: the append happens only if this is still the session's last message (null: only if its
# history is empty); given and no longer so, a 409 history_moved, and nothing is stored.
MessageId = Annotated[str, AfterValidator(_message_id)]


class HistoryAppend(_Input):
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_MESSAGES_PER_APPEND)]
    after: MessageId | None = None


class SessionEnd(_Input):
    """POST /sessions/{id}/end takes no fields: `{}`, or no body at all."""


class ForkInput(_Input):
    """POST /sessions/{id}/fork: copy the history up to and including `up_to` (all if absent), and
    merge `metadata` into the original's (a key set to null is left out)."""

    up_to: MessageId | None = None
    metadata: JsonObject | None = None


class Message(_WithoutAbsentToolFields):
    id: str
    role: str
    content: str | list[dict[str, Any]] | None = None  # null (not stored) beside tool calls
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    created_at: str


# --- chat -----------------------------------------------------------------------------------


def _plain_number(value: Any) -> Any:
    """JSON fractions arrive as Decimal (chalicelib/shared/jsonio.py); settings are plain floats."""
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
    preset: (
        Literal[
            "problem_solving",
            "conversational",
            "fun",
            "prose",
            "creative",
            "business",
            "deterministic",
            "code",
            "multilingual",
        ]
        | None
    ) = None
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
    remember: bool | None = None  # store the input and the reply (default true)
    recall: bool | None = None  # include the stored history in the context (default true)
    record: bool | None = None  # Julep's older name for remember
    tools: Tools | None = None  # for this call, beside the agent's (one of the same name replaces it)
    tool_choice: ToolChoice | None = None
    after: MessageId | None = None  # as in HistoryAppend; checked before the model is called


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


class ContextMessage(_WithoutAbsentToolFields):
    role: str
    content: str | list[dict[str, Any]] | None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class Context(_Output):
    """GET /sessions/{id}/context: what a model should get for this session, within its budget."""

    messages: list[ContextMessage]
    tokens: int
    token_budget: int | None
    context_overflow: ContextOverflow | None
    truncated: bool  # older turns were left out
    summarized: bool  # the session's summary stands in for older turns
    # The last assistant message's calls that await results: it is left out until they come (a
    # model refuses a call without its results); [] when none (docs/api.md, "Tool calls").
    pending_tool_calls: list[str] = []


# --- answers --------------------------------------------------------------------------------


class Created(_Output):
    id: str
    created_at: str
    jobs: list[str] = []


class Updated(_Output):
    id: str
    updated_at: str
    jobs: list[str] = []


class Deleted(_Output):
    id: str
    deleted_at: str


class MessageDeleted(Deleted):
    """DELETE of one message: an assistant message that made tool calls takes the tool messages
    that answered them with it; their ids are here."""

    tool_results_deleted: list[str] = []


# --- pages: a list's answer, and the cursor to the next page (null at the end) ------------------------


def _page(name: str, item: type[BaseModel]) -> type[_Output]:
    """A list's answer: its items, and the cursor to the next page (null at the end). Made by a
    function, not as a generic model, which pydantic would build at import (defer_build does not
    hold for a generic's origin)."""
    return create_model(
        name, __base__=_Output, __module__=__name__, items=(list[item], ...), next_cursor=(str | None, ...)
    )


AgentList = _page("AgentList", Agent)
UserList = _page("UserList", User)
SessionList = _page("SessionList", Session)
HistoryPage = _page("HistoryPage", Message)


class Appended(_Output):
    """POST /sessions/{id}/history: the messages as stored, with their ids and created_at."""

    items: list[Message]


# --- a thread's checkpoints (LangGraph's, docs/frameworks.md) --------------------------------------------

# One checkpoint is one item: its blob and metadata together at most this (DynamoDB's item limit
# is 400 KB; the rest is its keys and names). A pending write's value has the same bound.
MAX_CHECKPOINT_BYTES = 350 * 1024
MAX_WRITES = 500  # pending writes in one request
# A checkpoint's or a task's id, as the saver makes it (LangGraph's uuid6, or any): it is in an item's key.
CHECKPOINT_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
CheckpointId = Annotated[str, Field(pattern=CHECKPOINT_ID, description="a checkpoint's id")]
# A namespace is in the item's sort key, hex-encoded: with the ids, the key stays under DynamoDB's 1,024 bytes.
MAX_NAMESPACE_BYTES = 256
Namespace = Annotated[
    str,
    _bounded(MAX_NAMESPACE_BYTES),
    Field(description=f"the checkpoint namespace ('' is the root graph's), at most {MAX_NAMESPACE_BYTES} bytes"),
]


class Blob(_Input):
    """A serialized value as the saver's serializer made it: its type and its bytes, base64."""

    type: Annotated[str, Field(min_length=1, max_length=64)]
    # base64; its size is held by the rules (rules/checkpoints.py), which say what the bound is for
    data: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$")]


class CheckpointPut(_Input):
    """PUT /sessions/{id}/checkpoints/{checkpoint_id}: write (or write again) one checkpoint."""

    checkpoint_ns: Namespace = ""
    parent_checkpoint_id: CheckpointId | None = None
    checkpoint: Blob
    metadata: JsonObject = {}


class WriteIn(_Input):
    channel: Annotated[str, Field(min_length=1, max_length=256)]
    idx: Annotated[int, Field(ge=-1000, le=100_000, description="its index; negative: a special channel")]
    value: Blob


class CheckpointWrites(_Input):
    """POST /sessions/{id}/checkpoints/{checkpoint_id}/writes: a task's pending writes."""

    checkpoint_ns: Namespace = ""
    task_id: Annotated[str, Field(pattern=CHECKPOINT_ID)]
    task_path: Annotated[str, Field(max_length=1024)] = ""
    writes: Annotated[list[WriteIn], Field(min_length=1, max_length=MAX_WRITES)]


class BlobOut(_Output):
    type: str
    data: str


class PendingWrite(_Output):
    task_id: str
    channel: str
    value: BlobOut
    task_path: str = ""
    idx: int = 0


class Checkpoint(_Output):
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None = None
    checkpoint: BlobOut
    metadata: dict[str, Any] = {}
    pending_writes: list[PendingWrite] = []
    created_at: str


class CheckpointStored(_Output):
    checkpoint_ns: str
    checkpoint_id: str
    created_at: str


class WritesStored(_Output):
    stored: int  # written now; a write already there (same task, same index) is kept as it was


CheckpointPage = _page("CheckpointPage", Checkpoint)
