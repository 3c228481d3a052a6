"""A Google ADK `BaseSessionService` kept by the sessions service.

    from google.adk.runners import Runner
    from sessions_client import AsyncClient
    from sessions_client.integrations.adk import ServiceSessionService

    runner = Runner(agent=agent, app_name="coach", session_service=ServiceSessionService(AsyncClient(key, url)))

What maps to what (docs/frameworks.md):
- an app -> one service agent (metadata `adk_app`); its `app:` state -> that agent's metadata
  keys `app:<key>`;
- a user of an app -> one service user (metadata `adk_app`, `adk_user`); its `user:` state -> that
  user's metadata keys `user:<key>`;
- a session -> one service session of that agent and user (metadata `adk_app`, `adk_user`,
  `adk_session_id`; its initial state under `adk_state`);
- an event -> one history message holding the event's JSON (role user for the user's events,
  assistant for the rest); session state is the initial state with every event's session-scoped
  `state_delta` applied in order; `temp:` state is never stored.
- append_event appends with `after` = the last message the session object has seen: if another
  writer appended first, the service refuses (history_moved) and this raises ADK's
  StaleSessionError, nothing stored.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from google.adk.errors._stale_session_error import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events import Event
from google.adk.sessions import Session
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig, ListSessionsResponse
from google.adk.sessions.state import State

from ..client import AsyncClient
from ..errors import HistoryMoved, NotFound

APP, USER, SESSION, STATE = "adk_app", "adk_user", "adk_session_id", "adk_state"


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _scoped(metadata: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key: value for key, value in metadata.items() if key.startswith(prefix)}


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class ServiceSessionService(BaseSessionService):
    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._ids: dict[tuple[str, ...], str] = {}  # ("app", app) / ("user", ...) / ("session", ...) -> id

    # --- apps, users, sessions as the service's records ----------------------------------------

    async def _first(self, resource: Any, **query: Any) -> Any | None:
        async for found in resource.iter(page_size=2, order="asc", **query):
            return found
        return None

    async def _record(self, resource: Any, known_as: tuple[str, ...], wanted: dict[str, Any], make: Any = None) -> Any:
        """The record whose metadata holds `wanted`: by the id found before (one read), else found
        by its metadata (a list), else made by `make` (None: not made)."""
        known = self._ids.get(known_as)
        if known is not None:
            try:
                return await resource.get(known)
            except NotFound:  # deleted meanwhile
                self._ids.pop(known_as, None)
        found = await self._first(resource, metadata_filter=wanted)
        if found is None and make is not None:
            found = await resource.get((await make()).id)
        if found is not None:
            self._ids[known_as] = found.id
        return found

    async def _app(self, app_name: str) -> Any:
        return await self._record(
            self.client.agents,
            ("app", app_name),
            {APP: app_name},
            lambda: self.client.agents.create(
                name=app_name[:200] or "adk app", metadata={APP: app_name}, idempotency_key=f"adk-app-{app_name}"[:255]
            ),
        )

    async def _user(self, app_name: str, user_id: str) -> Any:
        return await self._record(
            self.client.users,
            ("user", app_name, user_id),
            {APP: app_name, USER: user_id},
            lambda: self.client.users.create(
                name=user_id[:200],
                metadata={APP: app_name, USER: user_id},
                idempotency_key=f"adk-user-{app_name}-{user_id}"[:255],
            ),
        )

    async def _service_session(self, app_name: str, user_id: str, session_id: str) -> Any | None:
        return await self._record(
            self.client.sessions,
            ("session", app_name, user_id, session_id),
            {APP: app_name, USER: user_id, SESSION: session_id},
        )

    async def _write_scoped_state(self, app_name: str, user_id: str, state: dict[str, Any]) -> None:
        """`app:` and `user:` keys to the app's agent and the user, merged key by key."""
        app_keys, user_keys = _scoped(state, State.APP_PREFIX), _scoped(state, State.USER_PREFIX)
        if app_keys:
            app = self._ids.get(("app", app_name)) or (await self._app(app_name)).id
            await self.client.agents.patch(app, metadata=_json_safe(app_keys))
        if user_keys:
            user = self._ids.get(("user", app_name, user_id)) or (await self._user(app_name, user_id)).id
            await self.client.users.patch(user, metadata=_json_safe(user_keys))

    # --- the interface ------------------------------------------------------------------------

    async def create_session(
        self, *, app_name: str, user_id: str, state: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Session:
        session_id = session_id.strip() if session_id and session_id.strip() else str(uuid.uuid4())
        if await self._service_session(app_name, user_id, session_id) is not None:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.")
        app, user = await self._app(app_name), await self._user(app_name, user_id)
        state = state or {}
        own = {
            k: v for k, v in state.items() if not k.startswith((State.APP_PREFIX, State.USER_PREFIX, State.TEMP_PREFIX))
        }
        created = await self.client.sessions.create(
            agent_id=app.id,
            user_id=user.id,
            metadata={APP: app_name, USER: user_id, SESSION: session_id, STATE: _json_safe(own)},
            idempotency_key=f"adk-{app_name}-{user_id}-{session_id}"[:255],
        )
        await self._write_scoped_state(app_name, user_id, state)
        session = await self.get_session(app_name=app_name, user_id=user_id, session_id=session_id)
        if session is None:  # deleted in between
            raise SessionNotFoundError(f"Session {session_id} not found.")
        session.last_update_time = _epoch(created.created_at)
        return session

    async def get_session(
        self, *, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None = None
    ) -> Session | None:
        record = await self._service_session(app_name, user_id, session_id)
        if record is None:
            return None
        try:
            messages = [m async for m in self.client.sessions.history.iter(record.id)]
        except NotFound:
            return None
        events = [Event.model_validate_json(m.content) for m in messages if isinstance(m.content, str)]
        state = dict(record.metadata.get(STATE) or {})
        for event in events:
            for key, value in ((event.actions.state_delta or {}) if event.actions else {}).items():
                if not key.startswith((State.APP_PREFIX, State.USER_PREFIX, State.TEMP_PREFIX)):
                    state[key] = value
        app = await self._app(app_name)
        user = await self._user(app_name, user_id)
        state.update(_scoped(app.metadata, State.APP_PREFIX))
        state.update(_scoped(user.metadata, State.USER_PREFIX))
        if config is not None:
            if config.after_timestamp is not None:
                events = [e for e in events if e.timestamp >= config.after_timestamp]
            if config.num_recent_events is not None:
                events = events[-config.num_recent_events :] if config.num_recent_events else []
        session = Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=state,
            events=events,
            last_update_time=_epoch(record.updated_at),
        )
        session._storage_update_marker = messages[-1].id if messages else ""
        return session

    async def list_sessions(self, *, app_name: str, user_id: str | None = None) -> ListSessionsResponse:
        """Oldest update first; without events or state, as ADK's own services answer."""
        wanted = {APP: app_name, **({USER: user_id} if user_id is not None else {})}
        found = []
        async for record in self.client.sessions.iter(metadata_filter=wanted, sort_by="updated_at", order="asc"):
            meta = record.metadata
            if SESSION in meta:
                found.append(
                    Session(
                        id=meta[SESSION],
                        app_name=app_name,
                        user_id=meta.get(USER, ""),
                        state={},
                        events=[],
                        last_update_time=_epoch(record.updated_at),
                    )
                )
        return ListSessionsResponse(sessions=found)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        record = await self._service_session(app_name, user_id, session_id)
        if record is not None:
            try:
                await self.client.sessions.delete(record.id)
            except NotFound:
                pass

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        found = await self._record(self.client.users, ("user", app_name, user_id), {APP: app_name, USER: user_id})
        metadata = found.metadata if found is not None else {}
        return {
            key.removeprefix(State.USER_PREFIX): value for key, value in _scoped(metadata, State.USER_PREFIX).items()
        }

    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        known_as = ("session", session.app_name, session.user_id, session.id)
        record_id = self._ids.get(known_as)
        if record_id is None:  # a session object this service did not read: find it once
            record = await self._service_session(session.app_name, session.user_id, session.id)
            if record is None:
                raise SessionNotFoundError(f"Session {session.id} not found.")
            record_id = record.id
        marker = session._storage_update_marker
        after = ... if marker is None else (marker or None)
        role = "user" if event.author == "user" else "assistant"
        try:
            appended = await self.client.sessions.history.append(
                record_id, [{"role": role, "content": event.model_dump_json(exclude_none=True)}], after=after
            )
        except NotFound:  # deleted meanwhile
            self._ids.pop(known_as, None)
            raise SessionNotFoundError(f"Session {session.id} not found.") from None
        except HistoryMoved:
            raise StaleSessionError(
                "The session object is behind what is stored: another writer appended first. "
                "Read the session again (get_session) and retry."
            ) from None
        if event.actions and event.actions.state_delta:
            await self._write_scoped_state(session.app_name, session.user_id, event.actions.state_delta)
        stored = appended.items[0]
        session._storage_update_marker = stored.id
        session.last_update_time = _epoch(stored.created_at)
        return self._commit_event_to_session(session, event)
