"""The typed client, sync (`Client`) and async (`AsyncClient`), for the whole API.

Both have the same resources (`agents`, `users`, `sessions`, `sessions.history`) with the same
methods; on `AsyncClient` each method is awaited and `iter` is an async iterator. Lists answer a
`Page`; `iter` follows the cursors to the end. Creating calls send an Idempotency-Key (a new one
per call unless you pass yours), so a retry never creates twice; updates take `if_match`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from . import models
from ._core import Call, Policy, Retry, after_transport_error, new_idempotency_key, outcome

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _given(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def _list_params(limit, cursor, offset, metadata_filter, sort_by, order, **more) -> dict[str, Any]:
    return _given(
        limit=limit, cursor=cursor, offset=offset or None, metadata_filter=metadata_filter or None,
        sort_by=sort_by, order=order, **more,
    )  # fmt: skip


class _Records:
    """What agents, users and sessions share: get, list, iter, patch, replace, delete."""

    path = ""
    model: type[models.Resource] = models.Resource

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def _create(self, fields: dict[str, Any], idempotency_key: str | None) -> Any:
        key = idempotency_key or new_idempotency_key()
        return self._owner._send(Call("POST", self.path, body=fields, model=models.Created, idempotency_key=key))

    def get(self, record_id: str) -> Any:
        return self._owner._send(Call("GET", f"{self.path}/{record_id}", model=self.model))

    def _list_call(self, params: dict[str, Any]) -> Call:
        return Call("GET", self.path, params=params, model=models.Page[self.model])

    def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        offset: int | None = None,
        metadata_filter: dict[str, Any] | None = None,
        sort_by: str | None = None,
        order: str | None = None,
    ) -> Any:
        """One page (newest first unless `order="asc"`); metadata_filter matches top-level keys."""
        return self._owner._send(self._list_call(_list_params(limit, cursor, offset, metadata_filter, sort_by, order)))

    def iter(
        self,
        *,
        page_size: int = 100,
        metadata_filter: dict[str, Any] | None = None,
        sort_by: str | None = None,
        order: str | None = None,
    ) -> Any:
        """Every matching record, page after page by cursor."""
        return self._owner._pages(self._list_call(_list_params(page_size, None, None, metadata_filter, sort_by, order)))

    def patch(self, record_id: str, *, if_match: str | None = None, **changes: Any) -> Any:
        """Change the fields given (metadata merges key by key; a key set to None is removed)."""
        return self._owner._send(
            Call("PATCH", f"{self.path}/{record_id}", body=changes, model=models.Updated, if_match=if_match)
        )

    def replace(self, record_id: str, *, if_match: str | None = None, **fields: Any) -> Any:
        """PUT: the fields whole (metadata replaced, not merged)."""
        return self._owner._send(
            Call("PUT", f"{self.path}/{record_id}", body=fields, model=models.Updated, if_match=if_match)
        )

    def delete(self, record_id: str, *, if_match: str | None = None) -> Any:
        """Delete it and everything under it (a repeat resumes an unfinished cascade)."""
        return self._owner._send(Call("DELETE", f"{self.path}/{record_id}", model=models.Deleted, if_match=if_match))


class Agents(_Records):
    path, model = "/agents", models.Agent

    def create(
        self,
        *,
        name: str,
        about: str | None = None,
        instructions: list[str] | str | None = None,
        model: str | None = None,
        default_settings: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        ttl: int | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        fields = _given(
            name=name, about=about, instructions=instructions, model=model, default_settings=default_settings,
            metadata=metadata, tools=tools, ttl=ttl,
        )  # fmt: skip
        return self._create(fields, idempotency_key)


class Users(_Records):
    path, model = "/users", models.User

    def create(
        self,
        *,
        name: str | None = None,
        about: str | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: int | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        return self._create(_given(name=name, about=about, metadata=metadata, ttl=ttl), idempotency_key)


class History:
    """A session's messages: appended atomically, read by page or to the end, rewound, cleared."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def append(
        self,
        session_id: str,
        messages: list[dict[str, Any]],
        *,
        after: str | None | type[Ellipsis] = ...,
        idempotency_key: str | None = None,
    ) -> Any:
        """Append in order, all or none. `after`: only if that message id is still the last one
        (None: only if the history is empty); HistoryMoved otherwise."""
        body: dict[str, Any] = {"messages": messages}
        if after is not ...:
            body["after"] = after
        key = idempotency_key or new_idempotency_key()
        return self._owner._send(
            Call("POST", f"/sessions/{session_id}/history", body=body, model=models.Appended, idempotency_key=key)
        )

    def _page_call(self, session_id: str, params: dict[str, Any]) -> Call:
        return Call("GET", f"/sessions/{session_id}/history", params=params, model=models.Page[models.Message])

    def list(
        self,
        session_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        offset: int | None = None,
        order: str | None = None,
    ) -> Any:
        """One page, oldest first (`order="desc"`: the last `limit` messages, newest first)."""
        params = _given(limit=limit, cursor=cursor, offset=offset or None, order=order)
        return self._owner._send(self._page_call(session_id, params))

    def iter(self, session_id: str, *, page_size: int = 1000, order: str | None = None) -> Any:
        return self._owner._pages(self._page_call(session_id, _given(limit=page_size, order=order)))

    def get(self, session_id: str, message_id: str) -> Any:
        return self._owner._send(Call("GET", f"/sessions/{session_id}/history/{message_id}", model=models.Message))

    def delete(self, session_id: str, message_id: str, *, only_if_last: bool = False) -> Any:
        """Remove one message (an assistant message's tool results go with it). `only_if_last`:
        only while it is the last message, else HistoryMoved (a pop that a concurrent append
        cannot turn into removing a message from the middle)."""
        params = {"only_if_last": True} if only_if_last else {}
        return self._owner._send(
            Call("DELETE", f"/sessions/{session_id}/history/{message_id}", params=params, model=models.Deleted)
        )

    def clear(self, session_id: str) -> Any:
        return self._owner._send(Call("DELETE", f"/sessions/{session_id}/history", model=models.Deleted))

    def rewind(self, session_id: str, after: str) -> Any:
        """Remove every message after `after` (kept)."""
        return self._owner._send(
            Call("DELETE", f"/sessions/{session_id}/history", params={"after": after}, model=models.Deleted)
        )


def _blob(kind: str, data: bytes) -> dict[str, str]:
    import base64

    return {"type": kind, "data": base64.b64encode(data).decode("ascii")}


class Checkpoints:
    """A session's checkpoints, as a LangGraph thread's (sessions_client.integrations.langgraph)."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def put(
        self,
        session_id: str,
        checkpoint_id: str,
        *,
        type: str,
        data: bytes,
        checkpoint_ns: str = "",
        parent_checkpoint_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        body = {
            "checkpoint_ns": checkpoint_ns,
            "parent_checkpoint_id": parent_checkpoint_id,
            "checkpoint": _blob(type, data),
            "metadata": metadata or {},
        }
        return self._owner._send(Call("PUT", f"/sessions/{session_id}/checkpoints/{checkpoint_id}", body=body))

    def put_writes(
        self,
        session_id: str,
        checkpoint_id: str,
        writes: list[tuple[str, int, str, bytes]],
        *,
        task_id: str,
        task_path: str = "",
        checkpoint_ns: str = "",
    ) -> Any:
        """(channel, index, type, data) each; a task's write already there is kept."""
        body = {
            "checkpoint_ns": checkpoint_ns,
            "task_id": task_id,
            "task_path": task_path,
            "writes": [{"channel": c, "idx": i, "value": _blob(t, d)} for c, i, t, d in writes],
        }
        return self._owner._send(Call("POST", f"/sessions/{session_id}/checkpoints/{checkpoint_id}/writes", body=body))

    def get(self, session_id: str, checkpoint_id: str, *, checkpoint_ns: str = "") -> Any:
        return self._owner._send(
            Call(
                "GET",
                f"/sessions/{session_id}/checkpoints/{checkpoint_id}",
                params={"checkpoint_ns": checkpoint_ns},
                model=models.Checkpoint,
            )
        )

    def _list_call(self, session_id: str, params: dict[str, Any]) -> Call:
        return Call("GET", f"/sessions/{session_id}/checkpoints", params=params, model=models.Page[models.Checkpoint])

    def list(
        self,
        session_id: str,
        *,
        checkpoint_ns: str | None = None,
        before: str | None = None,
        limit: int | None = None,
        metadata_filter: dict[str, Any] | None = None,
        cursor: str | None = None,
    ) -> Any:
        """Newest first; `checkpoint_ns` None: every namespace's."""
        params = _given(
            checkpoint_ns=checkpoint_ns, before=before, limit=limit, metadata_filter=metadata_filter or None,
            cursor=cursor,
        )  # fmt: skip
        return self._owner._send(self._list_call(session_id, params))

    def iter(
        self,
        session_id: str,
        *,
        checkpoint_ns: str | None = None,
        before: str | None = None,
        metadata_filter: dict[str, Any] | None = None,
        page_size: int = 100,
    ) -> Any:
        params = _given(
            checkpoint_ns=checkpoint_ns, before=before, metadata_filter=metadata_filter or None, limit=page_size
        )
        return self._owner._pages(self._list_call(session_id, params))

    def delete(self, session_id: str, checkpoint_id: str, *, checkpoint_ns: str = "") -> Any:
        return self._owner._send(
            Call(
                "DELETE",
                f"/sessions/{session_id}/checkpoints/{checkpoint_id}",
                params={"checkpoint_ns": checkpoint_ns},
                model=models.Deleted,
            )
        )


class Sessions(_Records):
    path, model = "/sessions", models.Session

    def __init__(self, owner: Any) -> None:
        super().__init__(owner)
        self.history = History(owner)
        self.checkpoints = Checkpoints(owner)

    def create(
        self,
        *,
        agent_id: str,
        user_id: str | None = None,
        situation: str | None = None,
        metadata: dict[str, Any] | None = None,
        render_templates: bool | None = None,
        token_budget: int | None = None,
        context_overflow: str | None = None,
        ttl: int | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        fields = _given(
            agent_id=agent_id, user_id=user_id, situation=situation, metadata=metadata,
            render_templates=render_templates, token_budget=token_budget, context_overflow=context_overflow, ttl=ttl,
        )  # fmt: skip
        return self._create(fields, idempotency_key)

    def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        offset: int | None = None,
        metadata_filter: dict[str, Any] | None = None,
        sort_by: str | None = None,
        order: str | None = None,
        agent_id: str | None = None,
        user_id: str | None = None,
        status: str | None = None,
    ) -> Any:
        params = _list_params(
            limit, cursor, offset, metadata_filter, sort_by, order, agent_id=agent_id, user_id=user_id, status=status
        )
        return self._owner._send(self._list_call(params))

    def iter(
        self,
        *,
        page_size: int = 100,
        metadata_filter: dict[str, Any] | None = None,
        sort_by: str | None = None,
        order: str | None = None,
        agent_id: str | None = None,
        user_id: str | None = None,
        status: str | None = None,
    ) -> Any:
        params = _list_params(
            page_size, None, None, metadata_filter, sort_by, order, agent_id=agent_id, user_id=user_id, status=status
        )
        return self._owner._pages(self._list_call(params))

    def end(self, session_id: str, *, if_match: str | None = None) -> Any:
        """End it: readable and listable still, it takes no more messages."""
        return self._owner._send(
            Call("POST", f"/sessions/{session_id}/end", body={}, model=models.Session, if_match=if_match)
        )

    def fork(
        self,
        session_id: str,
        *,
        up_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """A new session with this one's history up to `up_to` (all of it without)."""
        key = idempotency_key or new_idempotency_key()
        body = _given(up_to=up_to, metadata=metadata)
        return self._owner._send(
            Call("POST", f"/sessions/{session_id}/fork", body=body, model=models.Created, idempotency_key=key)
        )

    def context(self, session_id: str) -> Any:
        return self._owner._send(Call("GET", f"/sessions/{session_id}/context", model=models.Context))

    def chat(
        self, session_id: str, messages: list[dict[str, Any]], *, idempotency_key: str | None = None, **settings: Any
    ) -> Any:
        """Send messages and get the model's answer (remember, recall, tools, after, settings...)."""
        key = idempotency_key or new_idempotency_key()
        body = {"messages": messages, **settings}
        return self._owner._send(
            Call("POST", f"/sessions/{session_id}/chat", body=body, model=models.ChatResponse, idempotency_key=key)
        )


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}


def _request_args(call: Call) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.query(), "headers": call.headers()}
    if call.body is not None:
        args["json"] = call.body
    return args


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _next_page(call: Call, page: Any) -> Call | None:
    """The call for the page after `page`; None at the end."""
    if not page.next_cursor:
        return None
    return Call(call.method, call.path, {**call.params, "cursor": page.next_cursor}, model=call.model)


class _Base:
    def __init__(self, api_key: str, http: Any, policy: Policy | None) -> None:
        self._http = http
        self._http.headers.update(_headers(api_key))
        self._policy = policy or Policy()
        self.agents, self.users, self.sessions = Agents(self), Users(self), Sessions(self)

    def _read(self, call: Call, response: httpx.Response, attempt: int) -> Any:
        return outcome(call, response.status_code, response.headers, _body(response), attempt, self._policy)


class Client(_Base):
    """The sessions service over HTTP, synchronously. Use as a context manager, or close()."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        policy: Policy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        super().__init__(api_key, http or httpx.Client(base_url=base_url, timeout=timeout), policy)

    def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                result = self._read(call, self._http.request(call.method, call.path, **_request_args(call)), attempt)
            except httpx.TransportError as error:
                result = after_transport_error(call, error, attempt, self._policy)
            if not isinstance(result, Retry):
                return result
            time.sleep(result.seconds)
            attempt += 1

    def _pages(self, call: Call | None) -> Iterator[Any]:
        while call is not None:
            page = self._send(call)
            yield from page.items
            call = _next_page(call, page)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient(_Base):
    """The same, with asyncio: `await client.agents.get(...)`, `async for m in ...iter(...)`."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        policy: Policy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(api_key, http or httpx.AsyncClient(base_url=base_url, timeout=timeout), policy)

    async def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                answer = await self._http.request(call.method, call.path, **_request_args(call))
                result = self._read(call, answer, attempt)
            except httpx.TransportError as error:
                result = after_transport_error(call, error, attempt, self._policy)
            if not isinstance(result, Retry):
                return result
            await asyncio.sleep(result.seconds)
            attempt += 1

    async def _pages(self, call: Call | None) -> AsyncIterator[Any]:
        while call is not None:
            page = await self._send(call)
            for item in page.items:
                yield item
            call = _next_page(call, page)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
