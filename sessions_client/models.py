"""The API's resources as the client returns them: pydantic models that keep every field the
service answers, metadata included (and any field added after this client was written: extra
fields are kept, not dropped). Where the API answers an ETag, `etag` holds it, for If-Match."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

T = TypeVar("T")


class Resource(BaseModel):
    model_config = ConfigDict(extra="allow")
    _etag: str | None = PrivateAttr(default=None)

    @property
    def etag(self) -> str | None:
        """The version this was read or written at (the ETag header): pass it as `if_match`."""
        return self._etag


class Agent(Resource):
    id: str
    name: str
    about: str | None = None
    instructions: list[str] = []
    model: str | None = None
    default_settings: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    tools: list[dict[str, Any]] = []
    expires_at: str | None = None
    created_at: str
    updated_at: str


class User(Resource):
    id: str
    name: str | None = None
    about: str | None = None
    metadata: dict[str, Any] = {}
    expires_at: str | None = None
    created_at: str
    updated_at: str


class Session(Resource):
    id: str
    agent_id: str
    user_id: str | None = None
    situation: str | None = None
    summary: str | None = None
    metadata: dict[str, Any] = {}
    render_templates: bool = False
    token_budget: int | None = None
    context_overflow: str | None = None
    status: str = "active"
    ended_at: str | None = None
    expires_at: str | None = None
    created_at: str
    updated_at: str


class Message(Resource):
    id: str
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    created_at: str


class Created(Resource):
    id: str
    created_at: str


class Updated(Resource):
    id: str
    updated_at: str


class Deleted(Resource):
    id: str
    deleted_at: str
    tool_results_deleted: list[str] = []  # a message's delete: the tool results that went with it


class Page(Resource, Generic[T]):
    """One page of a list; `next_cursor` continues it (None at the end)."""

    items: list[T]
    next_cursor: str | None = None


class Appended(Resource):
    items: list[Message]


class Context(Resource):
    messages: list[dict[str, Any]]
    tokens: int
    token_budget: int | None = None
    context_overflow: str | None = None
    truncated: bool = False
    summarized: bool = False
    pending_tool_calls: list[str] = []


class ChatResponse(Resource):
    id: str
    finish_reason: str
    response: list[list[Message]]
    usage: dict[str, int]


class Blob(Resource):
    """A serialized value: its serializer's type name and its bytes (base64 on the wire)."""

    type: str
    data: str

    @property
    def bytes(self) -> bytes:
        import base64

        return base64.b64decode(self.data)


class PendingWrite(Resource):
    task_id: str
    channel: str
    value: Blob
    task_path: str = ""
    idx: int = 0


class Checkpoint(Resource):
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None = None
    checkpoint: Blob
    metadata: dict[str, Any] = {}
    pending_writes: list[PendingWrite] = []
    created_at: str
