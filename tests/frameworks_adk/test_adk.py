"""Google ADK's BaseSessionService over the service (sessions_client.integrations.adk). ADK's
source distribution ships no tests, so these are the interface's documented contract, with the
cases its in-memory and database services are tested for: sessions by app and user, state with
its app/user/temp prefixes, events appended with their actions, list_sessions, get_session's
config, an optimistic-concurrency error where ADK expects one, and a Runner with a fake model."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("google.adk")

from google.adk.errors._stale_session_error import StaleSessionError  # noqa: E402
from google.adk.errors.already_exists_error import AlreadyExistsError  # noqa: E402
from google.adk.events import Event, EventActions  # noqa: E402
from google.adk.sessions.base_session_service import GetSessionConfig  # noqa: E402
from google.genai import types  # noqa: E402

import sessions_client as sc  # noqa: E402
from conftest import KEYS  # noqa: E402
from sessions_client.integrations.adk import ServiceSessionService  # noqa: E402


def run(served_url, body):
    async def go():
        async with sc.AsyncClient(KEYS["alice"], served_url) as client:
            return await body(ServiceSessionService(client))

    return asyncio.run(go())


def event(author: str, text: str, delta: dict | None = None, **more) -> Event:
    return Event(
        author=author,
        invocation_id="inv-1",
        content=types.Content(role="user" if author == "user" else "model", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=delta or {}),
        **more,
    )


def test_sessions_by_app_and_user(served_url):
    async def body(service):
        one = await service.create_session(app_name="app", user_id="u1", session_id="s1", state={"k": 1})
        await service.create_session(app_name="app", user_id="u1")
        await service.create_session(app_name="app", user_id="u2", session_id="s1")  # another user's s1
        await service.create_session(app_name="other", user_id="u1", session_id="s1")  # another app's
        with pytest.raises(AlreadyExistsError):
            await service.create_session(app_name="app", user_id="u1", session_id="s1")
        got = await service.get_session(app_name="app", user_id="u1", session_id="s1")
        missing = await service.get_session(app_name="app", user_id="u1", session_id="nope")
        mine = await service.list_sessions(app_name="app", user_id="u1")
        every = await service.list_sessions(app_name="app")
        await service.delete_session(app_name="app", user_id="u1", session_id="s1")
        gone = await service.get_session(app_name="app", user_id="u1", session_id="s1")
        kept = await service.get_session(app_name="app", user_id="u2", session_id="s1")
        return one, got, missing, mine, every, gone, kept

    one, got, missing, mine, every, gone, kept = run(served_url, body)
    assert (one.id, one.app_name, one.user_id, one.state, one.events) == ("s1", "app", "u1", {"k": 1}, [])
    assert got.id == "s1" and got.state == {"k": 1} and missing is None
    assert len(mine.sessions) == 2 and {s.user_id for s in every.sessions} == {"u1", "u2"}
    assert all(s.events == [] for s in every.sessions)
    assert gone is None and kept is not None


def test_state_prefixes_and_events_with_their_actions(served_url):
    async def body(service):
        s1 = await service.create_session(app_name="app", user_id="u", state={"app:theme": "dark", "user:lang": "fr"})
        await service.append_event(s1, event("user", "hi", {"count": 1, "temp:scratch": "x", "user:visits": 1}))
        in_memory = dict(s1.state)
        await service.append_event(s1, event("coach", "hello", {"count": 2, "app:version": 3}))
        read = await service.get_session(app_name="app", user_id="u", session_id=s1.id)
        s2 = await service.create_session(app_name="app", user_id="u")  # shares app: and user: state
        other_user = await service.create_session(app_name="app", user_id="v")
        user_state = await service.get_user_state(app_name="app", user_id="u")
        return in_memory, read, s2, other_user, user_state

    in_memory, read, s2, other_user, user_state = run(served_url, body)
    assert in_memory["temp:scratch"] == "x"  # for the rest of the invocation
    assert read.state == {"count": 2, "app:theme": "dark", "app:version": 3, "user:lang": "fr", "user:visits": 1}
    assert [e.content.parts[0].text for e in read.events] == ["hi", "hello"]
    assert read.events[0].actions.state_delta == {"count": 1, "user:visits": 1}  # temp: never stored
    assert s2.state == {"app:theme": "dark", "app:version": 3, "user:lang": "fr", "user:visits": 1}
    assert other_user.state == {"app:theme": "dark", "app:version": 3}
    assert user_state == {"lang": "fr", "visits": 1}


def test_get_session_config_and_event_fields(served_url):
    async def body(service):
        session = await service.create_session(app_name="app", user_id="u")
        stamps = []
        for n in range(5):
            stamps.append(time.time())
            call = types.Part(function_call=types.FunctionCall(name="weather", args={"city": f"c{n}"}, id=f"call{n}"))
            await service.append_event(
                session,
                Event(author="coach", invocation_id=f"i{n}", content=types.Content(role="model", parts=[call])),
            )
        recent = await service.get_session(
            app_name="app", user_id="u", session_id=session.id, config=GetSessionConfig(num_recent_events=2)
        )
        none = await service.get_session(
            app_name="app", user_id="u", session_id=session.id, config=GetSessionConfig(num_recent_events=0)
        )
        after = await service.get_session(
            app_name="app", user_id="u", session_id=session.id, config=GetSessionConfig(after_timestamp=stamps[3])
        )
        return session, recent, none, after

    session, recent, none, after = run(served_url, body)
    assert [e.invocation_id for e in recent.events] == ["i3", "i4"] and none.events == []
    assert [e.invocation_id for e in after.events] == ["i3", "i4"]
    assert recent.events[-1].content.parts[0].function_call.args == {"city": "c4"}
    assert recent.events[-1].id == session.events[-1].id and recent.events[-1].timestamp == session.events[-1].timestamp


def test_a_stale_session_is_refused_and_nothing_is_stored(served_url):
    async def body(service):
        first = await service.create_session(app_name="app", user_id="u", session_id="shared")
        second = await service.get_session(app_name="app", user_id="u", session_id="shared")
        await service.append_event(first, event("user", "from the first"))
        with pytest.raises(StaleSessionError):
            await service.append_event(second, event("user", "from a stale copy", {"k": "stale"}))
        fresh = await service.get_session(app_name="app", user_id="u", session_id="shared")
        await service.append_event(fresh, event("user", "after reading again"))
        return await service.get_session(app_name="app", user_id="u", session_id="shared")

    final = run(served_url, body)
    assert [e.content.parts[0].text for e in final.events] == ["from the first", "after reading again"]
    assert "k" not in final.state


def test_a_runner_with_a_fake_model_keeps_the_conversation(served_url):
    from google.adk.agents import LlmAgent
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_response import LlmResponse
    from google.adk.runners import Runner

    class FakeModel(BaseLlm):
        async def generate_content_async(self, llm_request, stream=False):
            seen = sum(1 for c in llm_request.contents if c.role == "user")
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=f"answer {seen}")]))

    async def body(service):
        agent = LlmAgent(name="coach", model=FakeModel(model="fake"), instruction="Be kind")
        runner = Runner(agent=agent, app_name="coaching", session_service=service)
        session = await service.create_session(app_name="coaching", user_id="ann")
        replies = []
        for text in ("hi", "and?"):
            message = types.Content(role="user", parts=[types.Part(text=text)])
            async for produced in runner.run_async(user_id="ann", session_id=session.id, new_message=message):
                if produced.content and produced.author == "coach":
                    replies.append(produced.content.parts[0].text)
        stored = await service.get_session(app_name="coaching", user_id="ann", session_id=session.id)
        return replies, [(e.author, e.content.parts[0].text) for e in stored.events]

    replies, stored = run(served_url, body)
    assert replies == ["answer 1", "answer 2"]
    assert stored == [("user", "hi"), ("coach", "answer 1"), ("user", "and?"), ("coach", "answer 2")]
