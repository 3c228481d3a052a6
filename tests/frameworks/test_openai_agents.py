"""The OpenAI Agents SDK's Session over the service (sessions_client.integrations.openai_agents):
the interface's documented contract, as the SDK's own SQLite and Redis sessions are tested for
(round trip, limits, pop, clear, isolation), the items of every type the SDK's session tests
store, a pop that a concurrent append cannot misdirect, and a Runner loop with a scripted model.
The SDK's own session tests run against it too: tests/frameworks/openai_agents_suite.py."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("agents")

from agents import Agent, Runner, SessionSettings, function_tool  # noqa: E402
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402

import sessions_client as sc  # noqa: E402
from conftest import KEYS  # noqa: E402
from sessions_client.integrations.openai_agents import ServiceSession  # noqa: E402

# One of each kind of item the SDK's session tests store: messages (string and parts content,
# every role), a function call and its output, reasoning, a hosted tool call.
ITEMS = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "developer", "content": "Answer briefly."},
    {"role": "system", "content": "You are helpful."},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Let me check.", "annotations": [], "logprobs": []}],
    },
    {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}', "id": "fc_1"},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21°C"},
    {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "looked it up"}]},
    {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "paris"}},
    {"role": "user", "content": [{"type": "input_text", "text": "thanks"}, {"type": "input_text", "text": "!"}]},
]


def run(served_url, body):
    async def go():
        async with sc.AsyncClient(KEYS["alice"], served_url) as client:
            return await body(client)

    return asyncio.run(go())


def test_every_item_type_round_trips_exactly(served_url):
    async def body(client):
        session = ServiceSession("conv-1", client)
        await session.add_items(ITEMS[:4])
        await session.add_items(ITEMS[4:])
        return await session.get_items()

    assert run(served_url, body) == ITEMS


def test_limits_give_the_latest_items_in_order(served_url):
    async def body(client):
        session = ServiceSession("conv-2", client)
        await session.add_items([{"role": "user", "content": str(n)} for n in range(7)])
        latest = await session.get_items(limit=3)
        none = await session.get_items(limit=0)
        limited = ServiceSession("conv-2", client, session_settings=SessionSettings(limit=2))
        return latest, none, await limited.get_items(), await limited.get_items(limit=5)

    latest, none, by_settings, explicit = run(served_url, body)
    assert [i["content"] for i in latest] == ["4", "5", "6"] and none == []
    assert [i["content"] for i in by_settings] == ["5", "6"]
    assert [i["content"] for i in explicit] == ["2", "3", "4", "5", "6"]


def test_pop_clear_and_isolation(served_url):
    async def body(client):
        one, two = ServiceSession("conv-a", client), ServiceSession("conv-b", client)
        await one.add_items(ITEMS[:3])
        await two.add_items([{"role": "user", "content": "other"}])
        popped = await one.pop_item()
        after_pop = await one.get_items()
        again = ServiceSession("conv-a", client)  # another instance, the same session
        seen_again = await again.get_items()
        await one.clear_session()
        return popped, after_pop, seen_again, await one.get_items(), await one.pop_item(), await two.get_items()

    popped, after_pop, seen_again, cleared, empty_pop, other = run(served_url, body)
    assert popped == ITEMS[2] and after_pop == ITEMS[:2] and seen_again == ITEMS[:2]
    assert cleared == [] and empty_pop is None
    assert other == [{"role": "user", "content": "other"}]


def test_a_pop_never_removes_what_a_concurrent_append_pushed_out_of_last_place(served_url):
    """The race made certain: another client appends between the pop's read of the last item and
    its delete. The delete is refused (only_if_last), the pop reads again and pops the new last
    item; the one it first saw stays, where a delete by id would have removed it."""

    async def body(client):
        session = ServiceSession("conv-race", client)
        await session.add_items([{"role": "user", "content": "first"}])
        sid = await session.service_session_id()
        history = client.sessions.history
        real_delete, raced = history.delete, []

        async def delete_after_an_append(session_id, message_id, **kwargs):
            if not raced:
                raced.append(message_id)
                async with sc.AsyncClient(KEYS["alice"], served_url) as other:
                    await other.sessions.history.append(sid, [{"role": "assistant", "content": '{"role": "x"}'}])
            return await real_delete(session_id, message_id, **kwargs)

        history.delete = delete_after_an_append
        popped = await session.pop_item()
        return raced, popped, await session.get_items()

    raced, popped, left = run(served_url, body)
    assert raced and popped == {"role": "x"}
    assert left == [{"role": "user", "content": "first"}]


def test_a_runner_loop_with_a_scripted_model_and_a_tool_keeps_the_conversation(served_url):
    """Two turns of Runner.run on one session: the second turn's model call gets the first turn's
    items back from the service, the tool call and its output among them, in order."""

    @function_tool
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    async def body(client):
        session = ServiceSession("conv-run", client)
        model = ScriptedModel(
            [
                [function_call("weather", {"city": "Paris"}, call_id="call_1")],
                [assistant_message("Sunny in Paris.")],
                [assistant_message("You asked about Paris.")],
            ]
        )
        agent = Agent(name="Sara", instructions="Be kind", model=model, tools=[weather])
        first = await Runner.run(agent, "Weather in Paris?", session=session)
        second = await Runner.run(agent, "What did I ask?", session=session)
        return first.final_output, second.final_output, await session.get_items(), model

    first, second, items, model = run(served_url, body)
    assert (first, second) == ("Sunny in Paris.", "You asked about Paris.")
    kinds = [item.get("type", "message") for item in items]
    assert kinds == ["message", "function_call", "function_call_output", "message", "message", "message"]
    assert items[2]["output"] == "sunny in Paris" and items[1]["call_id"] == items[2]["call_id"] == "call_1"
    assert items[0] == {"content": "Weather in Paris?", "role": "user"}


def test_the_service_session_is_an_ordinary_session_other_clients_can_read(served_url):
    async def body(client):
        session = ServiceSession("conv-visible", client)
        await session.add_items([{"role": "user", "content": "hi"}])
        sid = await session.service_session_id()
        record = await client.sessions.get(sid)
        messages = (await client.sessions.history.list(sid)).items
        return record.metadata, [(m.role, m.content) for m in messages]

    metadata, messages = run(served_url, body)
    assert metadata == {"openai_agents_session_id": "conv-visible"}
    assert messages == [("user", '{"role":"user","content":"hi"}')]
