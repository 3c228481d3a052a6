"""A `Session` of the OpenAI Agents SDK (`openai-agents`) kept by the sessions service.

    from agents import Agent, Runner
    from sessions_client import AsyncClient
    from sessions_client.integrations.openai_agents import ServiceSession

    client = AsyncClient(api_key, base_url)
    session = ServiceSession("user-42", client)
    await Runner.run(agent, "Hi", session=session)

What maps to what (docs/frameworks.md):
- the SDK's session id -> one service session, found by its metadata
  (`{"openai_agents_session_id": <id>}`) or created on first use, under `agent_id` (by default
  one agent of this adapter's, made once: a service session always has an agent);
- each item (a Responses-API input item: a message, a function call, its output, reasoning, ...)
  -> one history message whose content is the item's JSON, exactly as given, and whose role is
  the item's (user, assistant, system; `developer` is system; items without one are the model's,
  assistant, or their results', user). get_items gives back the same dicts.
- pop_item -> a delete of the last message only while it is the last (`only_if_last`): a
  concurrent append makes it read again, never removes a message from the middle.

add_items stores up to 50 items per append, each append atomic (all or none); a longer list is
several appends in order. An item over 64 KiB as JSON is refused (ValidationFailed).
"""

from __future__ import annotations

import json
from typing import Any

from agents.memory.session_settings import SessionSettings, coerce_session_settings, resolve_session_limit

from ..client import AsyncClient
from ..errors import HistoryMoved

KEY = "openai_agents_session_id"
AGENT_MARK = {"sessions_client": "openai-agents"}
PER_APPEND = 50  # the service's bound on one atomic append
POP_ATTEMPTS = 20


def _role(item: dict[str, Any]) -> str:
    role = item.get("role")
    if role in ("user", "assistant", "system"):
        return role
    if role == "developer":
        return "system"
    kind = str(item.get("type", ""))
    return "user" if kind.endswith("_output") else "assistant"


def _item(message: Any) -> dict[str, Any] | None:
    """The item a message holds; a message written by another client, as a plain message."""
    if isinstance(message.content, str):
        try:
            item = json.loads(message.content)
        except ValueError:
            item = None
        if isinstance(item, dict):
            return item
        return {"role": message.role, "content": message.content}
    return None


class ServiceSession:
    """The SDK's Session protocol over one service session."""

    def __init__(
        self,
        session_id: str,
        client: AsyncClient,
        *,
        agent_id: str | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        # as the SDK's own sessions: a dictionary is read (TypeError for an unknown key), none is the default
        self.session_settings = (
            coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
        )
        self._client = client
        self._agent_id = agent_id
        self._service_id: str | None = None

    async def service_session_id(self) -> str:
        """The service session this SDK session is kept in: found, or made on first use."""
        if self._service_id is None:
            sessions = self._client.sessions
            async for found in sessions.iter(page_size=2, metadata_filter={KEY: self.session_id}, order="asc"):
                self._service_id = found.id
                break
            else:
                agent_id = self._agent_id or await self._adapter_agent()
                # the key makes two first uses at once one session (within the key's 24 hours)
                created = await sessions.create(
                    agent_id=agent_id, metadata={KEY: self.session_id}, idempotency_key=f"oai-{self.session_id}"[:255]
                )
                self._service_id = created.id
        return self._service_id

    async def _adapter_agent(self) -> str:
        async for agent in self._client.agents.iter(page_size=1, metadata_filter=AGENT_MARK, order="asc"):
            return agent.id
        created = await self._client.agents.create(
            name="openai-agents sessions", metadata=AGENT_MARK, idempotency_key="oai-agent"
        )
        return created.id

    async def get_items(self, limit: int | None = None) -> list[Any]:
        limit = resolve_session_limit(limit, self.session_settings)
        if limit is not None and limit <= 0:
            return []
        history = self._client.sessions.history
        sid = await self.service_session_id()
        if limit is None:
            messages = [m async for m in history.iter(sid)]
        else:
            messages = list(reversed((await history.list(sid, limit=min(limit, 1000), order="desc")).items))
        return [item for item in map(_item, messages) if item is not None]

    async def add_items(self, items: list[Any]) -> None:
        if not items:
            return
        sid = await self.service_session_id()
        for start in range(0, len(items), PER_APPEND):
            chunk = items[start : start + PER_APPEND]
            messages = [
                {"role": _role(dict(item)), "content": json.dumps(item, separators=(",", ":"))} for item in chunk
            ]
            await self._client.sessions.history.append(sid, messages)

    async def pop_item(self) -> Any | None:
        history = self._client.sessions.history
        sid = await self.service_session_id()
        for _ in range(POP_ATTEMPTS):
            page = await history.list(sid, limit=1, order="desc")
            if not page.items:
                return None
            last = page.items[0]
            try:
                await history.delete(sid, last.id, only_if_last=True)
            except HistoryMoved:  # an append landed first: pop what is last now
                continue
            return _item(last)
        raise HistoryMoved(409, "history_moved", "the history kept moving under pop_item; retry it")

    async def clear_session(self) -> None:
        await self._client.sessions.history.clear(await self.service_session_id())
