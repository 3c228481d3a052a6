"""The query parameters each operation takes, one pydantic model per kind of query: a list of
agents or users, of sessions, a page of history, a rewind, none. dispatch (web/operations.py)
reads the query string through the operation's model and the rules receive it parsed; the OpenAPI
document (web/openapi.py) describes the same fields, so the contract is written once.

Every value arrives as a string. Integers are ASCII digits only (int() would take "٣", a
full-width "５" and "1_0" too), every value that cannot be read is a 400 naming it, and a
parameter no model field names is a 400 rather than silently ignored (docs/api.md, "Query
parameters")."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from chalicelib.rules import models
from chalicelib.rules.validation import field_errors
from chalicelib.shared import clock, jsonio
from chalicelib.shared.errors import BadRequest
from chalicelib.store import index

LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 100, 1000
LIST_OFFSET_MAX = 10**9  # a list's offset is read through: bounded, and the cursor is cheaper
PAGE_DEFAULT, PAGE_MAX = 100, 1000  # history
HISTORY_OFFSET_MAX = 10_000  # offsets are read through; past this, page with the cursor


def _bad(message: str, details: list[dict[str, Any]] | None = None) -> PydanticCustomError:
    """A query value that cannot be read: `read` answers it as a 400 with this message (and
    details, where a value breaks several rules of a body's field)."""
    return PydanticCustomError("bad_query", message, {"details": details or []})


def _digits(low: int, high: int) -> BeforeValidator:
    def check(value: Any, info: Any) -> int:
        name = info.field_name
        if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
            value = int(value)
        elif not isinstance(value, int) or isinstance(value, bool):  # ints: the rules' own callers
            raise _bad(f"{name} must be an integer from {low} to {high}, in ASCII digits; got {value!r}")
        if not low <= value <= high:
            raise _bad(f"{name} must be from {low} to {high}; got {value}")
        return value

    return BeforeValidator(check)


def Digits(low: int, high: int, description: str) -> Any:  # noqa: N802 (a type, read as one)
    """An integer from low to high, written in ASCII digits."""
    return Annotated[int, _digits(low, high), Field(ge=low, le=high, description=description)]


def _one_of(*allowed: str) -> BeforeValidator:
    def check(value: Any, info: Any) -> str:
        if value not in allowed:
            raise _bad(f"{info.field_name} must be {' or '.join(allowed)}; got {value!r}")
        return value

    return BeforeValidator(check)


def _uuid(value: Any, info: Any) -> str:
    if not (isinstance(value, str) and clock.is_uuid(value)):
        raise _bad(f"{info.field_name} must be a UUID; got {value!r}")
    return clock.canonical_id(value)


Order = Annotated[str, _one_of("asc", "desc"), WithJsonSchema({"type": "string", "enum": ["asc", "desc"]})]
Uuid = Annotated[str | None, BeforeValidator(_uuid), WithJsonSchema({"type": "string", "format": "uuid"})]
Cursor = Annotated[
    str | None,
    WithJsonSchema({"type": "string"}),
    Field(description="the previous page's next_cursor, with the same query; not with a non-zero offset"),
]


def _metadata_filter(text: Any) -> dict[str, Any]:
    """`metadata_filter` as a JSON object held to the rules of metadata (keys, sizes, nesting,
    numbers DynamoDB can store): what no metadata may hold, no filter may ask for, and a number no
    stored value can equal (1e400) is a 400 here rather than a filter that silently matches nothing."""
    if isinstance(text, dict):  # given parsed, by the rules' own callers
        value: Any = text
    elif text is None or text == "":
        return {}
    else:
        try:
            value = jsonio.loads(text, what="metadata_filter")
        except BadRequest as error:
            raise _bad(error.message) from None
    if not isinstance(value, dict):
        raise _bad('metadata_filter must be a JSON object, such as {"db_uuid": "1234"}')
    try:
        # Compared, never written: an integer counts its significant digits, as stored numbers do
        # (10**40 written out matches a stored 1E+40, where a body could not write it so).
        checked = models.MetadataFilter.model_validate({"metadata_filter": _as_decimals(value)}).metadata_filter
    except ValidationError as exc:
        details = field_errors(exc)
        raise _bad(f"metadata_filter cannot match any metadata: {details[0]['message']}", details) from None
    indexable = len(index.metadata_terms(checked))
    if indexable > index.MAX_INDEXED_VALUES:
        raise _bad(
            f"metadata_filter has {indexable} conditions on top-level strings, numbers or booleans; "
            f"a record holds at most {index.MAX_INDEXED_VALUES} such values, so none could match"
        )
    return checked


MetadataFilterParam = Annotated[dict[str, Any], BeforeValidator(_metadata_filter)]


def _as_decimals(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, dict):
        return {key: _as_decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_decimals(item) for item in value]
    return value


class _Query(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    @model_validator(mode="after")
    def _cursor_or_offset(self) -> _Query:
        if getattr(self, "cursor", None) and getattr(self, "offset", 0):
            raise _bad("give cursor or offset, not both: a cursor already says where to continue")
        return self


class NoQuery(_Query):
    """A route that takes no query parameters: any is a 400."""


class ListQuery(_Query):
    """GET /agents, /users: a page of the developer's records, filtered and ordered."""

    limit: Digits(1, LIST_LIMIT_MAX, "items per page") = LIST_LIMIT_DEFAULT
    offset: Digits(0, LIST_OFFSET_MAX, "matching items to skip (read and skipped: prefer the cursor)") = 0
    cursor: Cursor = None
    metadata_filter: Annotated[
        MetadataFilterParam,
        Field(description="a JSON object: every top-level key must be present and equal (typed JSON equality)"),
    ] = {}
    sort_by: Annotated[
        str,
        _one_of("created_at", "updated_at"),
        WithJsonSchema({"type": "string", "enum": ["created_at", "updated_at"]}),
        Field(description="the order's field; ties are broken by id"),
    ] = "created_at"
    order: Annotated[Order, Field(description="desc: newest first")] = "desc"

    @property
    def descending(self) -> bool:
        return self.order == "desc"

    @property
    def parents(self) -> tuple[tuple[str, str], ...]:
        """("agent", id), ("user", id): the parents the list is limited to (sessions only)."""
        return ()


class SessionListQuery(ListQuery):
    """GET /sessions: a list, and the session's own conditions."""

    agent_id: Annotated[Uuid, Field(description="only this agent's sessions")] = None
    user_id: Annotated[Uuid, Field(description="only this user's sessions")] = None
    status: Annotated[
        str | None,
        _one_of("active", "ended"),
        WithJsonSchema({"type": "string", "enum": ["active", "ended"]}),
        Field(description="only active, or only ended, sessions"),
    ] = None

    @property
    def parents(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, value) for name, value in (("agent", self.agent_id), ("user", self.user_id)) if value)


class HistoryQuery(_Query):
    """GET /sessions/{id}/history: a page of messages."""

    limit: Digits(1, PAGE_MAX, "messages per page") = PAGE_DEFAULT
    offset: Digits(0, HISTORY_OFFSET_MAX, "messages to skip; page further with the cursor") = 0
    cursor: Cursor = None
    order: Annotated[Order, Field(description="asc: oldest first; desc: the last N turns")] = "asc"

    @property
    def descending(self) -> bool:
        return self.order == "desc"


def _flag(value: Any, info: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value not in ("true", "false"):
        raise _bad(f"{info.field_name} must be true or false; got {value!r}")
    return value == "true"


Flag = Annotated[bool, BeforeValidator(_flag), WithJsonSchema({"type": "boolean"})]


class MessageDeleteQuery(_Query):
    """DELETE /sessions/{id}/history/{message_id}."""

    only_if_last: Annotated[
        Flag, Field(description="true: only while it is the last message, else 409 history_moved (a safe pop)")
    ] = False


class RewindQuery(_Query):
    """DELETE /sessions/{id}/history: all of it, or with `after` every message after that one."""

    after: Annotated[
        Uuid, Field(description="keep the history up to and including this message, remove every one after it")
    ] = None


def read(model: type[_Query], params: dict[str, str]) -> _Query:
    """The query string through `model`: a 400 naming the first parameter it cannot take."""
    known = set(model.model_fields)
    unknown = sorted(set(params) - known)
    if unknown:
        accepted = f"accepted: {', '.join(sorted(known))}" if known else "this route takes no query parameters"
        raise BadRequest(f"unknown query parameter {', '.join(unknown)}; {accepted}")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise BadRequest(first["msg"], details=first.get("ctx", {}).get("details", [])) from None


def _namespace(value: Any, info: Any) -> Any:
    if isinstance(value, str) and len(value.encode("utf-8")) > models.MAX_NAMESPACE_BYTES:
        raise _bad(f"{info.field_name} is at most {models.MAX_NAMESPACE_BYTES} bytes (UTF-8)")
    return value


NamespaceParam = Annotated[
    str | None,
    BeforeValidator(_namespace),
    WithJsonSchema({"type": "string"}),
    Field(description="the checkpoint namespace ('' is the root graph's); absent: every one"),
]


class CheckpointQuery(_Query):
    """GET and DELETE of one checkpoint."""

    checkpoint_ns: NamespaceParam = None


class CheckpointListQuery(_Query):
    """GET /sessions/{id}/checkpoints: newest first."""

    checkpoint_ns: NamespaceParam = None
    before: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "pattern": models.CHECKPOINT_ID}),
        Field(pattern=models.CHECKPOINT_ID, description="only checkpoints older than this id"),
    ] = None
    limit: Digits(1, PAGE_MAX, "checkpoints per page") = PAGE_DEFAULT
    cursor: Cursor = None
    metadata_filter: Annotated[
        MetadataFilterParam,
        Field(description="a JSON object: every top-level key must be present in the metadata and equal"),
    ] = {}
