"""Every API operation, once: its route, the function that runs it, its status, its request and
response models and its summary. HTTP routes (app.py, web/http.py), direct Lambda invocation
(web/invoke.py) and the OpenAPI document (web/openapi.py) are all read off this one table, so
every path gets the same rules and errors and the description cannot drift.

The rules that run the operations (rules/records.py, lists.py, history.py, context.py, chat.py,
and the pydantic models under them) are imported inside each function, when it first runs, not
when this table is: a cold start (`import app`) registers every route without them, and each
request pays only for the modules it uses, once per process (docs/performance.md, "Cold start").
Models are named here, not imported, for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from chalicelib.shared import clock
from chalicelib.store import Store
from chalicelib.web import queries

if TYPE_CHECKING:
    from chalicelib.rules.idempotency import Receipt
    from chalicelib.rules.kinds import Kind


@dataclass(frozen=True)
class Call:
    """One operation's input, whatever carried it."""

    developer: str
    ids: dict[str, str] = field(default_factory=dict)  # path ids: agent_id, session_id, ...
    query: dict[str, str] = field(default_factory=dict)  # query parameters, as strings
    body: dict[str, Any] | None = None
    if_match: str | None = None  # PUT, PATCH, DELETE: the ETag(s) expected
    idempotency_key: str | None = None  # creating POSTs
    receipt: Receipt | None = None  # made from idempotency_key by dispatch


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    run: Callable[[Store, Call], Any]
    status: int
    summary: str
    response: str  # the answer's model, by its name in rules/models.py
    request: str | None = None  # the body's model; None: the operation takes no body
    body_optional: bool = False  # every field of `request` is optional: no body at all means {}
    query: str | None = None  # its query parameters (web/openapi.py QUERIES); None: ignored
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


def dispatch(store: Store, operation: Operation, call: Call) -> Answer:
    """Run the operation; its answer, with the ETag of the version it read or wrote. A creating
    operation with an Idempotency-Key runs at most once per key (rules/idempotency.py)."""
    from chalicelib.rules.records import Versioned

    # Path ids in either case name the same record: stored and answered in lower case.
    call = replace(call, ids={key: clock.canonical_id(value) for key, value in call.ids.items()})
    if operation.creates and call.idempotency_key is not None:
        from chalicelib.rules import idempotency

        result = idempotency.run(
            store,
            call.developer,
            call.idempotency_key,
            {"operation": operation.name, "ids": call.ids, "body": call.body},
            lambda receipt: operation.run(store, replace(call, receipt=receipt)),
        )
        if isinstance(result, idempotency.Replay):
            return Answer(result.status, result.body, {"Idempotent-Replayed": "true"})
    else:
        result = operation.run(store, call)
    if isinstance(result, Versioned):
        return Answer(operation.status, result.answer, {"ETag": queries.etag(result.version)})
    return Answer(operation.status, result)


# --- what each operation runs ---------------------------------------------------------------------


def kind_of(name: str) -> Kind:
    from chalicelib.rules.kinds import KINDS

    return KINDS[name]


def create_record(kind: str, store: Store, call: Call) -> Any:
    from chalicelib.rules import records

    return records.create(store, kind_of(kind), call.developer, call.body, call.receipt)


def list_records(kind: str, store: Store, call: Call) -> Any:
    from chalicelib.rules import lists

    return lists.list_records(
        store, kind_of(kind), call.developer, queries.list_query(kind_of(kind), call.developer, call.query)
    )


def get_record(kind: str, store: Store, call: Call) -> Any:
    from chalicelib.rules import records

    return records.get(store, kind_of(kind), call.developer, call.ids[f"{kind}_id"])


def update_record(kind: str, replace: bool, store: Store, call: Call) -> Any:
    """PUT (`replace`) or PATCH."""
    from chalicelib.rules import records

    expected = queries.expected_versions(call.if_match)
    record_id = call.ids[f"{kind}_id"]
    return records.update(store, kind_of(kind), call.developer, record_id, call.body, replace, expected)


def delete_record(kind: str, store: Store, call: Call) -> Any:
    from chalicelib.rules import deletes

    return deletes.delete(
        store, kind_of(kind), call.developer, call.ids[f"{kind}_id"], expected=queries.expected_versions(call.if_match)
    )


def get_history(store: Store, call: Call) -> Any:
    from chalicelib.rules import history

    session_id = call.ids["session_id"]
    return history.get(store, call.developer, session_id, queries.history_query(call.developer, session_id, call.query))


def append_history(store: Store, call: Call) -> Any:
    from chalicelib.rules import history

    return history.append(store, call.developer, call.ids["session_id"], call.body, call.receipt)


def clear_history(store: Store, call: Call) -> Any:
    """All of it, or with `?after=<message id>` every message after that one (a rewind)."""
    from chalicelib.rules import history

    after = queries.rewind_query(call.query)
    if after is not None:
        return history.rewind(store, call.developer, call.ids["session_id"], after)
    return history.clear(store, call.developer, call.ids["session_id"])


def get_message(store: Store, call: Call) -> Any:
    from chalicelib.rules import history

    return history.get_message(store, call.developer, call.ids["session_id"], call.ids["message_id"])


def delete_message(store: Store, call: Call) -> Any:
    from chalicelib.rules import history

    return history.delete_message(store, call.developer, call.ids["session_id"], call.ids["message_id"])


def end_session(store: Store, call: Call) -> Any:
    from chalicelib.rules import lifecycle

    expected = queries.expected_versions(call.if_match)
    return lifecycle.end(store, call.developer, call.ids["session_id"], call.body, expected)


def fork_session(store: Store, call: Call) -> Any:
    from chalicelib.rules import forks

    return forks.fork(store, call.developer, call.ids["session_id"], call.body, call.receipt)


def get_context(store: Store, call: Call) -> Any:
    from chalicelib.rules import context

    queries.no_query(call.query)
    return context.get(store, call.developer, call.ids["session_id"])


def chat_in_session(store: Store, call: Call) -> Any:
    from chalicelib.rules import chat

    return chat.chat(store, call.developer, call.ids["session_id"], call.body, call.receipt)


# --- the table ---------------------------------------------------------------------------------------

OPENAPI_PATH = "/openapi.json"  # the API's own description (web/openapi.py), served without a key
_BODY = (400, 413, 422)  # unreadable, too large, against the schema
_WRITE = (404, 409, 412)  # absent, lost every concurrency retry, a stale If-Match


# fmt: off
# A table, kept one entry to two or three lines: name, method, path, function, status, summary,
# response model, request model; then what the entry adds.
def _resource(kind: str, model: str, plural: str, list_query: str,
              create_errors: tuple[int, ...] = ()) -> list[Operation]:
    """The six operations of agents, users or sessions; `kind` is the kind's name (rules/kinds.py)."""
    collection, item = f"/{plural}", f"/{plural}/{{{kind}_id}}"
    return [
        Operation(f"{plural}.create", "POST", collection, partial(create_record, kind), 201,
                  f"create a {kind}", "Created", f"{model}Create",
                  errors=(*_BODY, *create_errors), creates=True),
        Operation(f"{plural}.list", "GET", collection, partial(list_records, kind), 200,
                  f"list {plural}, filtered and ordered", f"{model}List", query=list_query, errors=(400,)),
        Operation(f"{plural}.get", "GET", item, partial(get_record, kind), 200,
                  f"read a {kind}", model, errors=(404,), versioned=True),
        Operation(f"{plural}.replace", "PUT", item, partial(update_record, kind, True), 200,
                  f"replace a {kind}'s fields", "Updated", f"{model}Replace",
                  errors=(*_BODY, *_WRITE), if_match=True, versioned=True),
        Operation(f"{plural}.patch", "PATCH", item, partial(update_record, kind, False), 200,
                  f"change some of a {kind}'s fields", "Updated", f"{model}Patch",
                  errors=(*_BODY, *_WRITE), if_match=True, versioned=True),
        Operation(f"{plural}.delete", "DELETE", item, partial(delete_record, kind), 202,
                  f"delete a {kind} and everything under it", "Deleted", errors=_WRITE, if_match=True),
    ]


_HISTORY = "/sessions/{session_id}/history"
_MESSAGE = "/sessions/{session_id}/history/{message_id}"
OPERATIONS: dict[str, Operation] = {operation.name: operation for operation in [
    *_resource("agent", "Agent", "agents", "list"),
    *_resource("user", "User", "users", "list"),
    # A session names its agent and user: either absent is a 404.
    *_resource("session", "Session", "sessions", "session_list", create_errors=(404,)),
    Operation("sessions.history.get", "GET", _HISTORY, get_history, 200,
              "read a page of a session's history", "HistoryPage", query="history", errors=(400, 404)),
    Operation("sessions.history.append", "POST", _HISTORY, append_history, 201,
              "append messages to a session's history", "Appended", "HistoryAppend",
              errors=(*_BODY, 404, 409), creates=True),
    Operation("sessions.history.delete", "DELETE", _HISTORY, clear_history, 202,
              "clear a session's history, or with `after` every message after one (the session stays)",
              "Deleted", query="rewind", errors=(400, 404, 409)),
    Operation("sessions.history.message.get", "GET", _MESSAGE, get_message, 200,
              "read one message of a session's history", "Message", errors=(404,)),
    Operation("sessions.history.message.delete", "DELETE", _MESSAGE, delete_message, 202,
              "remove one message from a session's history (an assistant message takes its tool "
              "results with it)", "MessageDeleted", errors=(404, 409)),
    Operation("sessions.end", "POST", "/sessions/{session_id}/end", end_session, 200,
              "end a session: it stays readable and listable, and takes no more messages (final)",
              "Session", "SessionEnd", body_optional=True, errors=(*_BODY, 404, 409, 412), if_match=True,
              versioned=True),
    Operation("sessions.fork", "POST", "/sessions/{session_id}/fork", fork_session, 201,
              "a new session with this one's history up to a message (read in place, never copied)",
              "Created", "ForkInput", body_optional=True, errors=(*_BODY, 404), creates=True),
    # An adaptive context has the model provider summarize: its failures are the chat's.
    Operation("sessions.context.get", "GET", "/sessions/{session_id}/context", get_context, 200,
              "the context a model would get now", "Context", query="none", errors=(400, 404, 422, 502, 504)),
    Operation("sessions.chat", "POST", "/sessions/{session_id}/chat", chat_in_session, 200,
              "send messages and get the model's answer", "ChatResponse", "ChatInput",
              errors=(*_BODY, 404, 409, 502, 504), creates=True),
]}
# fmt: on
