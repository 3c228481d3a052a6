"""Every API operation by name, with the status it answers: the one table that HTTP routes (app.py)
and direct Lambda invocation both dispatch through, so both get the same rules and errors.

The modules that run the operations (service, lists, history, context, chat, and the pydantic
models under them) are imported when an operation first needs one, not when this table is: a
cold start (`import app`) registers every route without them, and each request pays only for
the modules it uses, once per process (docs/performance.md, "Cold start")."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

from chalicelib.shared import clock
from chalicelib.store import Store

if TYPE_CHECKING:
    from chalicelib.rules.idempotency import Receipt
    from chalicelib.rules.service import Kind


class _OnFirstUse:
    """A chalicelib module, imported when one of its attributes is first looked up."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(f"chalicelib.rules.{self._name}")
        return getattr(self._module, attribute)


chat, context, history, idempotency, lists, service = map(
    _OnFirstUse, ("chat", "context", "history", "idempotency", "lists", "service"))


@dataclass(frozen=True)
class Call:
    """One operation's input, whatever carried it."""
    developer: str
    ids: dict[str, str] = field(default_factory=dict)      # path ids: agent_id, session_id, ...
    query: dict[str, str] = field(default_factory=dict)    # query parameters, as strings
    body: dict[str, Any] | None = None
    if_match: str | None = None                            # PUT, PATCH, DELETE: the ETag(s) expected
    idempotency_key: str | None = None                     # creating POSTs
    receipt: Receipt | None = None                         # made from idempotency_key by dispatch


@dataclass(frozen=True)
class Operation:
    status: int
    run: Callable[[Store, Call], Any]
    takes_body: bool = False
    creates: bool = False          # honours Idempotency-Key


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def dispatch(store: Store, name: str, call: Call) -> Answer:
    """Run the named operation; its answer with the ETag of the version it read or wrote. A
    creating operation with an Idempotency-Key runs at most once per key (chalicelib/rules/idempotency.py)."""
    operation = OPERATIONS[name]
    # Path ids in either case name the same record: stored and answered in lower case.
    call = replace(call, ids={key: clock.canonical_id(value) for key, value in call.ids.items()})
    if operation.creates and call.idempotency_key is not None:
        body = idempotency.run(store, call.developer, call.idempotency_key,
                               {"operation": name, "ids": call.ids, "body": call.body},
                               lambda receipt: operation.run(store, replace(call, receipt=receipt)))
        if isinstance(body, idempotency.Replay):
            return Answer(body.status, body.body, {"Idempotent-Replayed": "true"})
    else:
        body = operation.run(store, call)
    version = getattr(body, "_version", None)
    return Answer(operation.status, body, {"ETag": service.etag(version)} if version is not None else {})


def _resource(name: str, plural: str) -> dict[str, Operation]:
    """The six operations of agents, users or sessions; `name` is the kind's (service.KINDS)."""
    id_name = f"{name}_id"

    def kind() -> Kind:
        return service.KINDS[name]

    return {
        f"{plural}.create": Operation(201, lambda s, c: service.create(s, kind(), c.developer, c.body, c.receipt),
                                     takes_body=True, creates=True),
        f"{plural}.list": Operation(200, lambda s, c: lists.list_records(s, kind(), c.developer, c.query)),
        f"{plural}.get": Operation(200, lambda s, c: service.get(s, kind(), c.developer, c.ids[id_name])),
        f"{plural}.replace": Operation(200, lambda s, c: service.update(
            s, kind(), c.developer, c.ids[id_name], c.body, replace=True, if_match=c.if_match), True),
        f"{plural}.patch": Operation(200, lambda s, c: service.update(
            s, kind(), c.developer, c.ids[id_name], c.body, replace=False, if_match=c.if_match), True),
        f"{plural}.delete": Operation(202, lambda s, c: service.delete(
            s, kind(), c.developer, c.ids[id_name], if_match=c.if_match)),
    }


OPERATIONS: dict[str, Operation] = {
    **_resource("agent", "agents"),
    **_resource("user", "users"),
    **_resource("session", "sessions"),
    "sessions.history.get": Operation(200, lambda s, c: history.get(
        s, c.developer, c.ids["session_id"], c.query)),
    "sessions.history.append": Operation(201, lambda s, c: history.append(
        s, c.developer, c.ids["session_id"], c.body, c.receipt), takes_body=True, creates=True),
    "sessions.history.delete": Operation(202, lambda s, c: history.clear(
        s, c.developer, c.ids["session_id"])),
    "sessions.context.get": Operation(200, lambda s, c: context.get(
        s, c.developer, c.ids["session_id"], c.query)),
    "sessions.chat": Operation(200, lambda s, c: chat.chat(
        s, c.developer, c.ids["session_id"], c.body, c.receipt), takes_body=True, creates=True),
}
