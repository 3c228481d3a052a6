"""A Strands Agents session repository kept by the sessions service.

    from strands import Agent
    from strands.session.repository_session_manager import RepositorySessionManager
    from sessions_client import Client
    from sessions_client.integrations.strands import ServiceSessionRepository

    repository = ServiceSessionRepository(Client(api_key, base_url))
    agent = Agent(session_manager=RepositorySessionManager(session_id="user-42", session_repository=repository))

What maps to what (docs/frameworks.md):
- a Strands session -> one service session (metadata `{"strands_session_id": <id>}`), its Session
  record one keyed item of it;
- an agent's state, a message, a multi-agent's state -> one keyed item each of that session
  (the session's checkpoint routes, which hold any keyed blob under a session: namespaces
  `strands:agent`, `strands:m:<agent>`, `strands:multi`). Strands' messages are numbered per
  agent and updated in place (a redaction), which the history, append-only, does not do.
Items are JSON, at most 350 KB each (the service refuses a larger one, and nothing is stored).
"""

from __future__ import annotations

import json
import re
from typing import Any

from strands.session.session_repository import SessionRepository
from strands.types.exceptions import SessionException
from strands.types.session import Session, SessionAgent, SessionMessage

from ..client import Client
from ..errors import NotFound

KEY = "strands_session_id"
AGENT_MARK = {"sessions_client": "strands"}
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")
SESSION_ITEM, AGENTS, MULTI = "session", "strands:agent", "strands:multi"


def _key(name: str) -> str:
    """An id as an item key: as it is when the service takes it, else its hex."""
    return name if _PLAIN_ID.match(name) else "x-" + name.encode().hex()


def _messages_of(agent_id: str) -> str:
    return f"strands:m:{_key(agent_id)}"


def _message_key(message_id: int) -> str:
    return f"{message_id:012d}"  # in message order as text


class ServiceSessionRepository(SessionRepository):
    def __init__(self, client: Client, *, agent_id: str | None = None) -> None:
        self.client = client
        self._agent_id = agent_id
        self._sessions: dict[str, str] = {}

    # --- sessions -----------------------------------------------------------------------------

    def _session_of(self, session_id: str) -> str | None:
        known = self._sessions.get(session_id)
        if known is None:
            found = next(iter(self.client.sessions.iter(page_size=2, metadata_filter={KEY: session_id})), None)
            if found is None:
                return None
            known = self._sessions[session_id] = found.id
        return known

    def _existing(self, session_id: str) -> str:
        sid = self._session_of(session_id)
        if sid is None:
            raise SessionException(f"Session {session_id} does not exist")
        return sid

    def _adapter_agent(self) -> str:
        if self._agent_id is None:
            found = next(iter(self.client.agents.iter(page_size=1, metadata_filter=AGENT_MARK, order="asc")), None)
            agents = self.client.agents
            self._agent_id = found.id if found else agents.create(name="strands sessions", metadata=AGENT_MARK).id
        return self._agent_id

    def _put(self, sid: str, namespace: str, key: str, value: dict[str, Any]) -> None:
        data = json.dumps(value, separators=(",", ":")).encode()
        self.client.sessions.checkpoints.put(sid, key, type="json", data=data, checkpoint_ns=namespace)

    def _get(self, sid: str, namespace: str, key: str) -> dict[str, Any] | None:
        try:
            found = self.client.sessions.checkpoints.get(sid, key, checkpoint_ns=namespace)
        except NotFound:
            return None
        return json.loads(found.checkpoint.bytes)

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        if self._session_of(session.session_id) is not None:
            raise SessionException(f"Session {session.session_id} already exists")
        created = self.client.sessions.create(
            agent_id=self._adapter_agent(),
            metadata={KEY: session.session_id},
            idempotency_key=f"strands-{session.session_id}"[:255],
        )
        self._sessions[session.session_id] = created.id
        self._put(created.id, "strands", SESSION_ITEM, session.to_dict())
        return session

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        sid = self._session_of(session_id)
        found = self._get(sid, "strands", SESSION_ITEM) if sid else None
        return Session.from_dict(found) if found is not None else None

    def delete_session(self, session_id: str, **kwargs: Any) -> None:
        sid = self._existing(session_id)
        self.client.sessions.delete(sid)
        self._sessions.pop(session_id, None)

    # --- agents -------------------------------------------------------------------------------

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        sid = self._existing(session_id)
        if self._get(sid, AGENTS, _key(session_agent.agent_id)) is not None:
            raise SessionException(f"Agent {session_agent.agent_id} already exists in session {session_id}")
        self._put(sid, AGENTS, _key(session_agent.agent_id), session_agent.to_dict())

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        sid = self._session_of(session_id)
        found = self._get(sid, AGENTS, _key(agent_id)) if sid else None
        return SessionAgent.from_dict(found) if found is not None else None

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        sid = self._existing(session_id)
        previous = self._get(sid, AGENTS, _key(session_agent.agent_id))
        if previous is None:
            raise SessionException(f"Agent {session_agent.agent_id} does not exist in session {session_id}")
        session_agent.created_at = previous.get("created_at", session_agent.created_at)
        self._put(sid, AGENTS, _key(session_agent.agent_id), session_agent.to_dict())

    # --- messages -----------------------------------------------------------------------------

    def create_message(self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any) -> None:
        sid = self._existing(session_id)
        key = _message_key(session_message.message_id)
        if self._get(sid, _messages_of(agent_id), key) is not None:
            raise SessionException(f"Message {session_message.message_id} already exists for agent {agent_id}")
        self._put(sid, _messages_of(agent_id), key, session_message.to_dict())

    def read_message(self, session_id: str, agent_id: str, message_id: int, **kwargs: Any) -> SessionMessage | None:
        sid = self._session_of(session_id)
        found = self._get(sid, _messages_of(agent_id), _message_key(message_id)) if sid else None
        return SessionMessage.from_dict(found) if found is not None else None

    def update_message(self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any) -> None:
        sid = self._existing(session_id)
        key = _message_key(session_message.message_id)
        previous = self._get(sid, _messages_of(agent_id), key)
        if previous is None:
            raise SessionException(f"Message {session_message.message_id} does not exist for agent {agent_id}")
        session_message.created_at = previous.get("created_at", session_message.created_at)
        self._put(sid, _messages_of(agent_id), key, session_message.to_dict())

    def list_messages(
        self, session_id: str, agent_id: str, limit: int | None = None, offset: int = 0, **kwargs: Any
    ) -> list[SessionMessage]:
        """In message order; the service lists newest first, so this reads the agent's messages
        and takes the page (its cost grows with the conversation)."""
        sid = self._existing(session_id)
        found = list(self.client.sessions.checkpoints.iter(sid, checkpoint_ns=_messages_of(agent_id), page_size=1000))
        ordered = [SessionMessage.from_dict(json.loads(item.checkpoint.bytes)) for item in reversed(found)]
        return ordered[offset : offset + limit] if limit is not None else ordered[offset:]

    # --- multi-agents -------------------------------------------------------------------------

    def create_multi_agent(self, session_id: str, multi_agent: Any, **kwargs: Any) -> None:
        self._put(self._existing(session_id), MULTI, _key(multi_agent.id), multi_agent.serialize_state())

    def read_multi_agent(self, session_id: str, multi_agent_id: str, **kwargs: Any) -> dict[str, Any] | None:
        sid = self._session_of(session_id)
        return self._get(sid, MULTI, _key(multi_agent_id)) if sid else None

    def update_multi_agent(self, session_id: str, multi_agent: Any, **kwargs: Any) -> None:
        sid = self._existing(session_id)
        if self._get(sid, MULTI, _key(multi_agent.id)) is None:
            raise SessionException(f"MultiAgent state {multi_agent.id} in session {session_id} does not exist")
        self._put(sid, MULTI, _key(multi_agent.id), multi_agent.serialize_state())
