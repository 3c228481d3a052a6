"""Every API operation, once: its route, the function that runs it, its status, its request and
response models and its summary. HTTP routes (app.py, web/http.py), direct Lambda invocation
(web/invoke.py) and the OpenAPI document (web/openapi.py) are all read off this one table, so
every path gets the same rules and errors and the description cannot drift.

The rules that run the operations (rules/records.py, lists.py, history.py, context.py, chat.py,
and the pydantic models under them) are imported inside each function, when it first runs, not
when this table is: a cold start (`import app`) registers every route without them, and each
request pays only for the modules it uses, once per process (docs/performance.md, "Cold start").
The models are held by name (Model) and imported when first needed, for the same reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from chalicelib.shared import clock
from chalicelib.store import Store
from chalicelib.web import headers

if TYPE_CHECKING:
    from pydantic import BaseModel

    from chalicelib.rules.idempotency import Receipt
    from chalicelib.rules.kinds import Kind


@dataclass(frozen=True)
class Call:
    """One operation's input as it arrived, whatever carried it (HTTP, a direct invocation)."""

    developer: str
    ids: dict[str, str] = field(default_factory=dict)  # path ids: agent_id, session_id, ...
    query: dict[str, str] = field(default_factory=dict)  # query parameters, as strings
    body: dict[str, Any] | None = None  # the JSON body as read
    if_match: str | None = None  # PUT, PATCH, DELETE: the ETag(s) expected
    idempotency_key: str | None = None  # creating POSTs


@dataclass(frozen=True)
class Request:
    """One operation's input read into the values the rules take (Operation.read)."""

    developer: str
    ids: dict[str, str]
    body: Any = None  # an instance of the operation's request model; None: it takes no body
    query: Any = None  # an instance of its query model; None: it reads no query
    expected: frozenset[int] | None = None  # the versions If-Match allows; None: any
    receipt: Receipt | None = None  # the Idempotency-Key's, made by dispatch


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """A pydantic model of the wire (rules/models.py) or of a query (rules/parameters.py), held
    by name and imported when an operation first needs it, so that `import app` builds the table
    without pydantic (docs/performance.md, "Cold start"). tests/test_openapi.py resolves every
    one the table holds."""

    module: str
    name: str

    def get(self) -> type[BaseModel]:
        return _models(self.module, self.name)


@cache
def _models(module: str, name: str) -> type[BaseModel]:
    return getattr(importlib.import_module(module), name)


def wire(name: str) -> Model:
    return Model("chalicelib.rules.models", name)


def params(name: str) -> Model:
    return Model("chalicelib.rules.parameters", name)


@dataclass(frozen=True)
class Operation:
    """One operation, declared once: HTTP routes, direct invocation and OpenAPI read it."""

    name: str
    method: str
    path: str
    run: Callable[[Store, Request], Any]  # takes the parsed input, answers what `response` shapes
    status: int
    summary: str
    response: Model  # the answer's model
    request: Model | None = None  # the body's model; None: the operation takes no body
    body_optional: bool = False  # every field of `request` is optional: no body at all means {}
    query: Model | None = None  # its query parameters; None: the query string is not read
    errors: tuple[int, ...] = ()  # besides those every route can answer (web/openapi.py)
    creates: bool = False  # honours Idempotency-Key
    if_match: bool = False  # honours If-Match
    versioned: bool = False  # answers the resource's ETag

    @property
    def takes_body(self) -> bool:
        return self.request is not None

    @property
    def path_ids(self) -> tuple[str, ...]:
        return tuple(part[1:-1] for part in self.path.split("/") if part.startswith("{"))

    def read(self, call: Call, receipt: Receipt | None = None) -> Request:
        """The call held to this operation's models: a 400 for a query, a 422 for a body."""
        from chalicelib.rules import parameters, validation

        return Request(
            developer=call.developer,
            ids=call.ids,
            query=parameters.read(self.query.get(), call.query) if self.query is not None else None,
            body=validation.parse(self.request.get(), call.body or {}) if self.request is not None else None,
            expected=headers.expected_versions(call.if_match) if self.if_match else None,
            receipt=receipt,
        )

    def answer(self, result: Any) -> Answer:
        """The result shaped by the response model, with the ETag of the version it read or wrote."""
        from chalicelib.rules.records import Versioned

        version = result.version if isinstance(result, Versioned) else None
        body = result.answer if isinstance(result, Versioned) else result
        model = self.response.get()
        if not isinstance(body, model):
            body = model.model_validate(body)
        return Answer(self.status, body, {"ETag": headers.etag(version)} if version is not None else {})


def dispatch(store: Store, operation: Operation, call: Call) -> Answer:
    """Read the call, run the operation and shape its answer. A creating operation with an
    Idempotency-Key runs at most once per key (rules/idempotency.py)."""
    # Path ids in either case name the same record: stored and answered in lower case.
    call = replace(call, ids={key: clock.canonical_id(value) for key, value in call.ids.items()})
    if operation.creates and call.idempotency_key is not None:
        from chalicelib.rules import idempotency

        result = idempotency.run(
            store,
            call.developer,
            call.idempotency_key,
            {"operation": operation.name, "ids": call.ids, "body": call.body},
            lambda receipt: operation.run(store, operation.read(call, receipt)),
        )
        if isinstance(result, idempotency.Replay):  # shaped when it was first answered
            return Answer(result.status, result.body, {"Idempotent-Replayed": "true"})
        return operation.answer(result)
    return operation.answer(operation.run(store, operation.read(call)))


# --- what each operation runs ---------------------------------------------------------------------


def kind_of(name: str) -> Kind:
    from chalicelib.rules.kinds import KINDS

    return KINDS[name]


def create_record(kind: str, store: Store, request: Request) -> Any:
    from chalicelib.rules import records

    return records.create(store, kind_of(kind), request.developer, request.body, request.receipt)


def list_records(kind: str, store: Store, request: Request) -> Any:
    from chalicelib.rules import lists

    return lists.list_records(store, kind_of(kind), request.developer, request.query)


def get_record(kind: str, store: Store, request: Request) -> Any:
    from chalicelib.rules import records

    return records.get(store, kind_of(kind), request.developer, request.ids[f"{kind}_id"])


def update_record(kind: str, replace: bool, store: Store, request: Request) -> Any:
    """PUT (`replace`) or PATCH."""
    from chalicelib.rules import records

    record_id = request.ids[f"{kind}_id"]
    return records.update(store, kind_of(kind), request.developer, record_id, request.body, replace, request.expected)


def delete_record(kind: str, store: Store, request: Request) -> Any:
    from chalicelib.rules import deletes

    record_id = request.ids[f"{kind}_id"]
    return deletes.delete(store, kind_of(kind), request.developer, record_id, expected=request.expected)


def get_history(store: Store, request: Request) -> Any:
    from chalicelib.rules import history

    return history.get(store, request.developer, request.ids["session_id"], request.query)


def append_history(store: Store, request: Request) -> Any:
    from chalicelib.rules import history

    return history.append(store, request.developer, request.ids["session_id"], request.body, request.receipt)


def clear_history(store: Store, request: Request) -> Any:
    """All of it, or with `?after=<message id>` every message after that one (a rewind)."""
    from chalicelib.rules import history

    if request.query.after is not None:
        return history.rewind(store, request.developer, request.ids["session_id"], request.query.after)
    return history.clear(store, request.developer, request.ids["session_id"])


def get_message(store: Store, request: Request) -> Any:
    from chalicelib.rules import history

    return history.get_message(store, request.developer, request.ids["session_id"], request.ids["message_id"])


def delete_message(store: Store, request: Request) -> Any:
    from chalicelib.rules import history

    return history.delete_message(
        store, request.developer, request.ids["session_id"], request.ids["message_id"], request.query.only_if_last
    )


def end_session(store: Store, request: Request) -> Any:
    from chalicelib.rules import lifecycle

    return lifecycle.end(store, request.developer, request.ids["session_id"], request.expected)


def fork_session(store: Store, request: Request) -> Any:
    from chalicelib.rules import forks

    return forks.fork(store, request.developer, request.ids["session_id"], request.body, request.receipt)


def get_context(store: Store, request: Request) -> Any:
    from chalicelib.rules import context

    return context.get(store, request.developer, request.ids["session_id"])


def chat_in_session(store: Store, request: Request) -> Any:
    from chalicelib.rules import chat

    return chat.chat(store, request.developer, request.ids["session_id"], request.body, request.receipt)


def put_checkpoint(store: Store, request: Request) -> Any:
    from chalicelib.rules import checkpoints

    ids = request.ids
    return checkpoints.put(store, request.developer, ids["session_id"], ids["checkpoint_id"], request.body)


def get_checkpoint(store: Store, request: Request) -> Any:
    from chalicelib.rules import checkpoints

    ids = request.ids
    return checkpoints.get(store, request.developer, ids["session_id"], ids["checkpoint_id"], request.query)


def list_checkpoints(store: Store, request: Request) -> Any:
    from chalicelib.rules import checkpoints

    return checkpoints.list_checkpoints(store, request.developer, request.ids["session_id"], request.query)


def delete_checkpoint(store: Store, request: Request) -> Any:
    from chalicelib.rules import checkpoints

    ids = request.ids
    return checkpoints.delete(store, request.developer, ids["session_id"], ids["checkpoint_id"], request.query)


def put_checkpoint_writes(store: Store, request: Request) -> Any:
    from chalicelib.rules import checkpoints

    ids = request.ids
    return checkpoints.put_writes(store, request.developer, ids["session_id"], ids["checkpoint_id"], request.body)


# --- the table ---------------------------------------------------------------------------------------

OPENAPI_PATH = "/openapi.json"  # the API's own description (web/openapi.py), served without a key
_BODY = (400, 413, 422)  # unreadable, too large, against the schema
_WRITE = (404, 409, 412)  # absent, lost every concurrency retry, a stale If-Match


# fmt: off
# A table, kept one entry to two or three lines: name, method, path, function, status, summary,
# response model, request model; then what the entry adds.
def _resource(kind: str, model: str, plural: str, list_query: Model,
              create_errors: tuple[int, ...] = ()) -> list[Operation]:
    """The six operations of agents, users or sessions; `kind` is the kind's name (rules/kinds.py)."""
    collection, item = f"/{plural}", f"/{plural}/{{{kind}_id}}"
    return [
        Operation(f"{plural}.create", "POST", collection, partial(create_record, kind), 201,
                  f"create a {kind}", wire("Created"), wire(f"{model}Create"),
                  errors=(*_BODY, *create_errors), creates=True),
        Operation(f"{plural}.list", "GET", collection, partial(list_records, kind), 200,
                  f"list {plural}, filtered and ordered", wire(f"{model}List"), query=list_query, errors=(400,)),
        Operation(f"{plural}.get", "GET", item, partial(get_record, kind), 200,
                  f"read a {kind}", wire(model), errors=(404,), versioned=True),
        Operation(f"{plural}.replace", "PUT", item, partial(update_record, kind, True), 200,
                  f"replace a {kind}'s fields", wire("Updated"), wire(f"{model}Replace"),
                  errors=(*_BODY, *_WRITE), if_match=True, versioned=True),
        Operation(f"{plural}.patch", "PATCH", item, partial(update_record, kind, False), 200,
                  f"change some of a {kind}'s fields", wire("Updated"), wire(f"{model}Patch"),
                  errors=(*_BODY, *_WRITE), if_match=True, versioned=True),
        Operation(f"{plural}.delete", "DELETE", item, partial(delete_record, kind), 202,
                  f"delete a {kind} and everything under it", wire("Deleted"), errors=_WRITE, if_match=True),
    ]


_HISTORY = "/sessions/{session_id}/history"
_CHECKPOINTS = "/sessions/{session_id}/checkpoints"
_CHECKPOINT = "/sessions/{session_id}/checkpoints/{checkpoint_id}"
_MESSAGE = "/sessions/{session_id}/history/{message_id}"
OPERATIONS: dict[str, Operation] = {operation.name: operation for operation in [
    *_resource("agent", "Agent", "agents", params("ListQuery")),
    *_resource("user", "User", "users", params("ListQuery")),
    # A session names its agent and user: either absent is a 404.
    *_resource("session", "Session", "sessions", params("SessionListQuery"), create_errors=(404,)),
    Operation("sessions.history.get", "GET", _HISTORY, get_history, 200,
              "read a page of a session's history", wire("HistoryPage"), query=params("HistoryQuery"),
              errors=(400, 404)),
    Operation("sessions.history.append", "POST", _HISTORY, append_history, 201,
              "append messages to a session's history", wire("Appended"), wire("HistoryAppend"),
              errors=(*_BODY, 404, 409), creates=True),
    Operation("sessions.history.delete", "DELETE", _HISTORY, clear_history, 202,
              "clear a session's history, or with `after` every message after one (the session stays)",
              wire("Deleted"), query=params("RewindQuery"), errors=(400, 404, 409)),
    Operation("sessions.history.message.get", "GET", _MESSAGE, get_message, 200,
              "read one message of a session's history", wire("Message"), errors=(404,)),
    Operation("sessions.history.message.delete", "DELETE", _MESSAGE, delete_message, 202,
              "remove one message from a session's history (an assistant message takes its tool "
              "results with it)", wire("MessageDeleted"), query=params("MessageDeleteQuery"),
              errors=(400, 404, 409)),
    Operation("sessions.end", "POST", "/sessions/{session_id}/end", end_session, 200,
              "end a session: it stays readable and listable, and takes no more messages (final)",
              wire("Session"), wire("SessionEnd"), body_optional=True, errors=(*_BODY, 404, 409, 412), if_match=True,
              versioned=True),
    Operation("sessions.fork", "POST", "/sessions/{session_id}/fork", fork_session, 201,
              "a new session with this one's history up to a message (read in place, never copied)",
              wire("Created"), wire("ForkInput"), body_optional=True, errors=(*_BODY, 404), creates=True),
    # An adaptive context has the model provider summarize: its failures are the chat's.
    Operation("sessions.context.get", "GET", "/sessions/{session_id}/context", get_context, 200,
              "the context a model would get now", wire("Context"), query=params("NoQuery"),
              errors=(400, 404, 422, 502, 504)),
    # A session as a LangGraph thread (rules/checkpoints.py, docs/frameworks.md).
    Operation("sessions.checkpoints.list", "GET", _CHECKPOINTS, list_checkpoints, 200,
              "list a thread's checkpoints, newest first, with their pending writes", wire("CheckpointPage"),
              query=params("CheckpointListQuery"), errors=(400, 404)),
    Operation("sessions.checkpoints.put", "PUT", _CHECKPOINT, put_checkpoint, 200,
              "write (or write again) one checkpoint of a thread", wire("CheckpointStored"), wire("CheckpointPut"),
              errors=(*_BODY, 404)),
    Operation("sessions.checkpoints.get", "GET", _CHECKPOINT, get_checkpoint, 200,
              "read one checkpoint with its pending writes", wire("Checkpoint"), query=params("CheckpointQuery"),
              errors=(400, 404)),
    Operation("sessions.checkpoints.delete", "DELETE", _CHECKPOINT, delete_checkpoint, 202,
              "delete one checkpoint and its pending writes", wire("Deleted"), query=params("CheckpointQuery"),
              errors=(400, 404)),
    Operation("sessions.checkpoints.writes.put", "POST", f"{_CHECKPOINT}/writes", put_checkpoint_writes, 201,
              "store a task's pending writes for a checkpoint (a repeat changes nothing)", wire("WritesStored"),
              wire("CheckpointWrites"), errors=(*_BODY, 404, 409)),
    Operation("sessions.chat", "POST", "/sessions/{session_id}/chat", chat_in_session, 200,
              "send messages and get the model's answer", wire("ChatResponse"), wire("ChatInput"),
              errors=(*_BODY, 404, 409, 502, 504), creates=True),
]}
# fmt: on
