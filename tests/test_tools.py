"""Agents that use tools (issue 14): tools on agents, tool calls and results in the history, chat
through an OpenAI-compatible provider and Bedrock, contexts that keep a call with its results, and
removals that keep the session's open calls true. On moto and on DynamoDB Local."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import providers
from chalicelib.providers import bedrock as bedrock_module
from chalicelib.rules import models
from conftest import FakeModel, completion, model_provider

pytestmark = pytest.mark.real_engine

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "the weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def call(call_id: str, name: str = "get_weather", arguments: str = '{"city": "Paris"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def asks(*calls: dict[str, Any], content: Any = None) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


def result(call_id: str, content: str = "18 C, sunny") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def append(api, session_id: str, *messages: dict[str, Any]):
    return api.post(f"/sessions/{session_id}/history", {"messages": list(messages)})


def stored(api, session_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/sessions/{session_id}/history")
    assert answer.status_code == 200, answer.json
    return [{k: v for k, v in m.items() if k not in ("id", "created_at")} for m in answer.json["items"]]


def calling_completion(*calls: dict[str, Any], content: Any = None) -> dict[str, Any]:
    body = completion()
    body["choices"][0]["message"] = {"role": "assistant", "content": content, "tool_calls": list(calls)}
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body


# --- agents -----------------------------------------------------------------------------------


def test_an_agents_tools_are_stored_answered_replaced_and_set(api):
    answer = api.post("/agents", {"name": "A", "tools": [WEATHER]})
    assert answer.status_code == 201, answer.json
    agent_id = answer.json["id"]
    assert api.get(f"/agents/{agent_id}").json["tools"] == [WEATHER]
    assert api.put(f"/agents/{agent_id}", {"name": "A", "about": "x", "tools": [CLOCK]}).status_code == 200
    assert api.get(f"/agents/{agent_id}").json["tools"] == [CLOCK]
    assert api.patch(f"/agents/{agent_id}", {"tools": [WEATHER, CLOCK]}).status_code == 200
    assert api.get(f"/agents/{agent_id}").json["tools"] == [WEATHER, CLOCK]
    assert api.patch(f"/agents/{agent_id}", {"about": "y"}).status_code == 200  # tools untouched
    assert api.get(f"/agents/{agent_id}").json["tools"] == [WEATHER, CLOCK]
    assert api.patch(f"/agents/{agent_id}", {"tools": []}).status_code == 200
    assert api.get(f"/agents/{agent_id}").json["tools"] == []
    listed = api.get("/agents").json["items"]
    assert [a["tools"] for a in listed if a["id"] == agent_id] == [[]]


def test_a_tools_numbers_come_back_as_written(api):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "number", "minimum": 0.5}}}
    agent_id = api.post("/agents", {"name": "A", "tools": [tool]}).json["id"]
    assert api.get(f"/agents/{agent_id}").json["tools"] == [tool]


@pytest.mark.parametrize(
    "tools, field, kind",
    [
        ([WEATHER, WEATHER], "tools.1.function.name", "duplicate_name"),
        ([{"type": "function", "function": {"name": "get weather"}}], "tools.0.function.name", None),
        ([{"type": "webhook", "function": {"name": "f"}}], "tools.0.type", None),
        ([{"type": "function", "function": {"name": "f", "extra": 1}}], "tools.0.function.extra", None),
        ([{"type": "function", "function": {"name": f"f{n}"}} for n in range(129)], "tools", "too_long"),
        (
            [{"type": "function", "function": {"name": f"f{n}", "description": "d" * 9000}} for n in range(4)],
            "tools",
            "object_too_large",
        ),
    ],
    ids=["duplicate", "bad-name", "not-function", "unknown-field", "too-many", "too-large"],
)
def test_bad_tools_are_a_422_naming_the_field_and_store_nothing(api, tools, field, kind):
    answer = api.post("/agents", {"name": "A", "tools": tools})
    assert answer.status_code == 422, answer.json
    details = answer.json["error"]["details"]
    assert field in {d["field"] for d in details}, details
    if kind:
        assert kind in {d["type"] for d in details}, details
    assert api.get("/agents").json["items"] == []
    agent_id = api.post("/agents", {"name": "B", "tools": [CLOCK]}).json["id"]
    assert api.patch(f"/agents/{agent_id}", {"tools": tools}).status_code == 422
    assert api.get(f"/agents/{agent_id}").json["tools"] == [CLOCK]


# --- history ------------------------------------------------------------------------------------


def test_calls_and_results_are_stored_and_read_in_openais_shape(api, session_id):
    answer = append(api, session_id, {"role": "user", "content": "weather?"}, asks(call("c1"), call("c2", "get_time")))
    assert answer.status_code == 201, answer.json
    assert answer.json["items"][1]["tool_calls"] == [call("c1"), call("c2", "get_time")]
    assert append(api, session_id, result("c2", "noon"), result("c1")).status_code == 201
    assert stored(api, session_id) == [
        {"role": "user", "content": "weather?", "name": None},
        {"role": "assistant", "content": None, "name": None, "tool_calls": [call("c1"), call("c2", "get_time")]},
        {"role": "tool", "content": "noon", "name": None, "tool_call_id": "c2"},
        {"role": "tool", "content": "18 C, sunny", "name": None, "tool_call_id": "c1"},
    ]
    one = api.get(f"/sessions/{session_id}/history/{answer.json['items'][1]['id']}").json
    assert one["tool_calls"] == [call("c1"), call("c2", "get_time")] and one["content"] is None
    messages = api.get(f"/sessions/{session_id}/context").json["messages"]
    assert messages[-3:] == [
        {"role": "assistant", "content": None, "name": None, "tool_calls": [call("c1"), call("c2", "get_time")]},
        {"role": "tool", "content": "noon", "name": None, "tool_call_id": "c2"},
        {"role": "tool", "content": "18 C, sunny", "name": None, "tool_call_id": "c1"},
    ]


def test_a_call_and_its_result_may_come_in_one_append_and_julep_function_role_still_works(api, session_id):
    answer = append(api, session_id, asks(call("c1")), result("c1"), {"role": "function", "name": "f", "content": "x"})
    assert answer.status_code == 201, answer.json
    assert [m["role"] for m in stored(api, session_id)] == ["assistant", "tool", "function"]


@pytest.mark.parametrize(
    "messages, field",
    [
        ([result("nope")], "messages.0.tool_call_id"),
        ([asks(call("c1")), result("c1"), result("c1")], "messages.2.tool_call_id"),  # answered already
        ([result("c1"), asks(call("c1"))], "messages.0.tool_call_id"),  # before its call
        ([{"role": "tool", "content": "x"}], "messages.0.tool_call_id"),
        ([{"role": "user", "content": "x", "tool_calls": [call("c1")]}], "messages.0.tool_calls"),
        ([{"role": "user", "content": "x", "tool_call_id": "c1"}], "messages.0.tool_call_id"),
        ([{"role": "assistant", "content": None}], "messages.0.content"),
        ([asks(call("c1"), call("c1"))], "messages.0.tool_calls"),
        ([asks(call("c 1"))], "messages.0.tool_calls.0.id"),
        ([asks(*(call(f"c{n}") for n in range(33)))], "messages.0.tool_calls"),
        ([asks(call("c1", arguments="x" * 65_536))], "messages.0.content"),
    ],
    ids=[
        "unknown",
        "twice",
        "before-call",
        "no-id",
        "user-calls",
        "user-answers",
        "null-content",
        "same-id",
        "bad-id",
        "too-many",
        "too-large",
    ],
)
def test_a_tool_message_must_answer_an_open_call_or_nothing_is_stored(api, session_id, messages, field):
    answer = append(api, session_id, *messages)
    assert answer.status_code == 422, answer.json
    assert field in {d["field"] for d in answer.json["error"]["details"]}, answer.json
    assert stored(api, session_id) == []


def test_a_result_names_its_id_in_the_error_and_a_call_of_another_session_does_not_count(api, agent_id):
    first = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    second = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    assert append(api, first, asks(call("c1"))).status_code == 201
    answer = append(api, second, result("c1"))
    assert answer.status_code == 422 and "c1" in answer.json["error"]["message"], answer.json
    assert append(api, first, result("c1")).status_code == 201


# --- removals keep the open calls true ------------------------------------------------------------


def test_deleting_a_call_removes_its_results_and_says_so(api, session_id):
    items = append(
        api, session_id, {"role": "user", "content": "q"}, asks(call("c1"), call("c2")), result("c1"), result("c2")
    ).json["items"]
    assert append(api, session_id, {"role": "assistant", "content": "18 C"}).status_code == 201
    answer = api.delete(f"/sessions/{session_id}/history/{items[1]['id']}")
    assert answer.status_code == 202, answer.json
    assert answer.json["tool_results_deleted"] == [items[2]["id"], items[3]["id"]]
    assert [m["role"] for m in stored(api, session_id)] == ["user", "assistant"]
    assert append(api, session_id, result("c1")).status_code == 422  # its calls are gone for good


def test_deleting_the_last_results_makes_the_message_before_the_call_the_last(api, session_id):
    items = append(api, session_id, {"role": "user", "content": "q"}, asks(call("c1")), result("c1")).json["items"]
    assert api.delete(f"/sessions/{session_id}/history/{items[1]['id']}").status_code == 202
    after = api.post(
        f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "r"}], "after": items[0]["id"]}
    )
    assert after.status_code == 201, after.json


def test_deleting_a_result_opens_its_call_again(api, session_id):
    items = append(api, session_id, asks(call("c1")), result("c1", "wrong")).json["items"]
    assert append(api, session_id, result("c1")).status_code == 422
    answer = api.delete(f"/sessions/{session_id}/history/{items[1]['id']}")
    assert answer.status_code == 202 and answer.json["tool_results_deleted"] == []
    assert append(api, session_id, result("c1", "right")).status_code == 201
    assert [m["content"] for m in stored(api, session_id)] == [None, "right"]


def test_a_rewind_to_a_call_opens_it_again_and_a_fork_carries_its_open_calls(api, session_id):
    items = append(api, session_id, {"role": "user", "content": "q"}, asks(call("c1")), result("c1")).json["items"]
    fork = api.post(f"/sessions/{session_id}/fork", {"up_to": items[1]["id"]})
    assert fork.status_code == 201, fork.json
    assert append(api, fork.json["id"], result("c1", "in the fork")).status_code == 201
    assert api.delete(f"/sessions/{session_id}/history?after={items[1]['id']}").status_code == 202
    assert append(api, session_id, result("c1", "again")).status_code == 201
    assert [m["content"] for m in stored(api, session_id)][-1] == "again"
    full_fork = api.post(f"/sessions/{session_id}/fork", {}).json["id"]
    assert append(api, full_fork, result("c1")).status_code == 422  # answered in what it copied


def test_a_cleared_history_has_no_open_calls(api, session_id):
    append(api, session_id, asks(call("c1")))
    assert api.delete(f"/sessions/{session_id}/history").status_code == 202
    assert append(api, session_id, result("c1")).status_code == 422


# --- context --------------------------------------------------------------------------------------


def test_truncation_never_leaves_a_result_without_its_call(api, agent_id):
    """The budget's boundary falls between a call and its results: the results go with it."""
    session = api.post("/sessions", {"agent_id": agent_id, "token_budget": 60, "context_overflow": "truncate"})
    session_id = session.json["id"]
    big_call = asks(call("c1", arguments=json.dumps({"city": "word " * 60})))
    assert (
        append(
            api,
            session_id,
            {"role": "user", "content": "q"},
            big_call,
            result("c1"),
            result_after := {"role": "assistant", "content": "fine"},
        ).status_code
        == 201
    )
    context = api.get(f"/sessions/{session_id}/context").json
    assert context["truncated"] is True
    roles = [m["role"] for m in context["messages"]]
    assert "tool" not in roles and roles[-1] == "assistant", context["messages"]
    assert context["messages"][-1] == {**result_after, "name": None}


def test_a_fold_takes_a_calls_results_with_it(api, agent_id):
    """The summarizer's input is full after the call: its result is folded with it all the same
    (cut short), so the summary never ends between them and no result is left behind."""
    fake = FakeModel(summary="they asked for the weather")
    session_id = api.post(
        "/sessions", {"agent_id": agent_id, "token_budget": 400, "context_overflow": "adaptive"}
    ).json["id"]
    messages = [
        {"role": "user", "content": "word " * 4_000},
        asks(call("c1")),
        result("c1", "18 C, sunny " + "detail " * 300),
    ]
    assert append(api, session_id, *messages).status_code == 201
    assert append(api, session_id, {"role": "user", "content": "and now?"}).status_code == 201
    with model_provider(fake):
        context = api.get(f"/sessions/{session_id}/context").json
    assert fake.calls, context
    folded = fake.calls[0]["messages"][-1]["content"]
    assert "calls get_weather" in folded and "tool: 18 C, sunny" in folded, folded[-300:]
    assert [m["role"] for m in context["messages"]][-2:] == ["system", "user"], context["messages"]
    assert context["summarized"] is True


# --- chat ---------------------------------------------------------------------------------------


def test_a_tool_calling_chat_end_to_end_over_an_openai_compatible_provider(api, openai, agent_id):
    assert api.patch(f"/agents/{agent_id}", {"tools": [WEATHER]}).status_code == 200
    session_id = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    openai.answer(body=calling_completion(call("call_1")))
    openai.answer(body=completion("It is 18 C and sunny in Paris."))

    first = api.post(
        f"/sessions/{session_id}/chat",
        {"messages": [{"role": "user", "content": "weather in Paris?"}], "tools": [CLOCK], "tool_choice": "auto"},
    )
    assert first.status_code == 200, first.json
    assert first.json["finish_reason"] == "tool_calls"
    reply = first.json["response"][0][0]
    assert reply["tool_calls"] == [call("call_1")] and reply["content"] == ""
    sent = openai.bodies[0]
    assert sent["tools"] == [WEATHER, CLOCK] and sent["tool_choice"] == "auto"

    second = api.post(f"/sessions/{session_id}/chat", {"messages": [result("call_1")]})
    assert second.status_code == 200, second.json
    assert second.json["finish_reason"] == "stop"
    sent = openai.bodies[1]
    assert sent["messages"][-2:] == [
        {"role": "assistant", "content": "", "tool_calls": [call("call_1")]},
        {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"},
    ]
    assert sent["tools"] == [WEATHER] and "tool_choice" not in sent
    assert stored(api, session_id) == [
        {"role": "user", "content": "weather in Paris?", "name": None},
        {"role": "assistant", "content": "", "name": None, "tool_calls": [call("call_1")]},
        {"role": "tool", "content": "18 C, sunny", "name": None, "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 18 C and sunny in Paris.", "name": None},
    ]


def test_a_chat_tool_replaces_the_agents_of_its_name_and_a_named_choice_goes_as_given(api, openai, agent_id):
    api.patch(f"/agents/{agent_id}", {"tools": [WEATHER, CLOCK]})
    session_id = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    mine = {"type": "function", "function": {"name": "get_time", "description": "mine"}, "id": "t1"}
    choice = {"type": "function", "function": {"name": "get_time"}}
    answer = api.post(
        f"/sessions/{session_id}/chat",
        {"messages": [{"role": "user", "content": "time?"}], "tools": [mine], "tool_choice": choice},
    )
    assert answer.status_code == 200, answer.json
    assert openai.bodies[0]["tools"] == [
        WEATHER,
        {"type": "function", "function": {"name": "get_time", "description": "mine"}},
    ]
    assert openai.bodies[0]["tool_choice"] == choice


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice.function.name"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"messages": [result("c9")]}, "messages.0.tool_call_id"),
    ],
    ids=["unknown-choice", "required-without-tools", "unknown-result"],
)
def test_a_chat_that_names_what_is_not_there_is_a_422_before_the_model(api, openai, session_id, extra, field):
    body = {"messages": [{"role": "user", "content": "hi"}], **extra}
    answer = api.post(f"/sessions/{session_id}/chat", body)
    assert answer.status_code == 422, answer.json
    assert field in {d["field"] for d in answer.json["error"]["details"]}, answer.json
    assert openai.requests == [] and stored(api, session_id) == []


def test_a_provider_call_id_that_does_not_fit_is_replaced_by_a_stable_one(api, openai, session_id):
    openai.answer(body=calling_completion(call("call 1/with spaces")))
    answer = api.post(f"/sessions/{session_id}/chat", {"messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200, answer.json
    new_id = answer.json["response"][0][0]["tool_calls"][0]["id"]
    assert new_id == providers.call_id("call 1/with spaces") and new_id.startswith("call_")
    assert append(api, session_id, result(new_id)).status_code == 201


# --- Bedrock ------------------------------------------------------------------------------------


class RecordingConverse:
    """Bedrock's runtime client as far as Converse goes: records each request, answers one reply."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer = answer

    def converse(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return self.answer


def test_bedrock_gets_tool_config_tool_use_and_tool_result_blocks(api, session_id):
    append(api, session_id, {"role": "user", "content": "weather?"}, asks(call("c1")), result("c1"))
    client = RecordingConverse(
        {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "tu_2", "name": "get_time", "input": {"tz": "CET"}}}],
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 5, "outputTokens": 3},
        }
    )
    with model_provider(bedrock_module.Bedrock(client)):
        answer = api.post(
            f"/sessions/{session_id}/chat",
            {"messages": [{"role": "user", "content": "and the time?"}], "tools": [CLOCK], "tool_choice": "required"},
        )
    assert answer.status_code == 200, answer.json
    assert answer.json["finish_reason"] == "tool_calls"
    assert answer.json["response"][0][0]["tool_calls"] == [call("tu_2", "get_time", '{"tz": "CET"}')]
    request = client.requests[0]
    assert request["messages"][-3:] == [
        {"role": "user", "content": [{"text": "weather?"}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "c1", "name": "get_weather", "input": {"city": "Paris"}}}],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "c1", "content": [{"text": "18 C, sunny"}]}},
                {"text": "and the time?"},
            ],
        },
    ]
    assert request["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}}],
        "toolChoice": {"any": {}},
    }


def test_bedrock_without_tools_gets_the_calls_as_text():
    system, turns = bedrock_module.converse_messages(
        [{"role": "user", "content": "q"}, asks(call("c1")), result("c1")], tool_blocks=False
    )
    assert turns == [
        {"role": "user", "content": [{"text": "q"}]},
        {"role": "assistant", "content": [{"text": ' \n[calls get_weather({"city": "Paris"}), id c1]'}]},
        {"role": "user", "content": [{"text": "[result of call c1] 18 C, sunny"}]},
    ]
    assert bedrock_module.tool_config([WEATHER], "none") is None
    named = bedrock_module.tool_config([WEATHER], {"type": "function", "function": {"name": "get_weather"}})
    assert named["toolChoice"] == {"tool": {"name": "get_weather"}}


# --- the julep SDK ------------------------------------------------------------------------------


def test_the_julep_sdk_creates_an_agent_with_tools_and_chats_to_a_tool_call(table, openai):
    from julep import Client

    import app as app_module
    from conftest import KEYS
    from infra.local_gateway import serve_in_thread

    server = serve_in_thread(app_module.app)
    try:
        client = Client(api_key=KEYS["alice"], base_url=server.url)
        agent = client.agents.create(name="Sara", about="A coach", instructions=["Be kind"], tools=[WEATHER])
        session = client.sessions.create(agent_id=agent.id, situation="weather desk")
        openai.answer(body=calling_completion(call("call_1")))
        response = client.sessions.chat(session_id=session.id, messages=[{"role": "user", "content": "Paris?"}])
        assert response.finish_reason == "tool_calls"
        assert response.response[0][0].content == ""
        assert openai.bodies[0]["tools"] == [WEATHER]
        openai.answer(body=completion("18 C."))
        final = client.sessions.chat(session_id=session.id, messages=[result("call_1")])
        assert final.finish_reason == "stop" and final.response[0][0].content == "18 C."
    finally:
        server.shutdown()
        server.server_close()


def test_the_reply_model_refuses_what_cannot_be_stored():
    with pytest.raises(ValueError):
        models.MessageIn.model_validate({"role": "assistant", "content": None, "tool_calls": []})


# --- nothing between a call and its last result (issue 20) ---------------------------------------


def separated(messages: list[dict[str, Any]]) -> list[int]:
    """Where a message comes between an assistant's calls and their last result (indexes), or a
    result is not right after its call's unit: [] for a history or context that keeps the rule."""
    wrong, waiting = [], set()
    for n, message in enumerate(messages):
        answered = message.get("tool_call_id")
        if waiting and answered not in waiting:
            wrong.append(n)
            waiting = set()
        if answered is not None:
            if answered not in waiting:
                wrong.append(n)
            waiting.discard(answered)
        waiting |= {c["id"] for c in message.get("tool_calls") or []}
    return wrong


def test_two_calls_answered_one_chat_at_a_time_is_a_409_before_the_model(api, openai, agent_id):
    """The defect: after the first result the model was sent assistant(a, b), tool a, with b
    unanswered, and its reply was stored between the two results."""
    session_id = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    openai.answer(body=calling_completion(call("a"), call("b", "get_time")))
    assert api.post(f"/sessions/{session_id}/chat", {"messages": [{"role": "user", "content": "q"}]}).status_code == 200
    before = stored(api, session_id)

    partial = api.post(f"/sessions/{session_id}/chat", {"messages": [result("a")]})
    assert partial.status_code == 409, partial.json
    assert partial.json["error"]["code"] == "tool_calls_pending"
    assert partial.json["error"]["details"][0]["open_tool_calls"] == ["b"]
    assert len(openai.requests) == 1 and stored(api, session_id) == before  # no model, nothing stored

    openai.answer(body=completion("18 C at noon"))
    whole = api.post(f"/sessions/{session_id}/chat", {"messages": [result("b", "noon"), result("a")]})
    assert whole.status_code == 200, whole.json
    sent = openai.bodies[1]["messages"]
    assert [m["role"] for m in sent[-3:]] == ["assistant", "tool", "tool"] and separated(sent) == []
    history = stored(api, session_id)
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool", "assistant"]
    assert separated(history) == [] and history[-1]["content"] == "18 C at noon"


def test_results_may_come_by_appends_before_the_chat_that_brings_the_last(api, openai, agent_id):
    session_id = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    assert append(api, session_id, {"role": "user", "content": "q"}, asks(call("a"), call("b"))).status_code == 201
    context = api.get(f"/sessions/{session_id}/context").json
    assert context["pending_tool_calls"] == ["a", "b"]
    assert [m["role"] for m in context["messages"]] == ["system", "user"]  # the call waits outside
    assert append(api, session_id, result("a")).status_code == 201
    assert api.get(f"/sessions/{session_id}/context").json["pending_tool_calls"] == ["b"]
    answer = api.post(f"/sessions/{session_id}/chat", {"messages": [result("b")]})
    assert answer.status_code == 200, answer.json
    assert [m["role"] for m in openai.bodies[0]["messages"][-3:]] == ["assistant", "tool", "tool"]
    context = api.get(f"/sessions/{session_id}/context").json
    assert context["pending_tool_calls"] == [] and separated(context["messages"]) == []


@pytest.mark.parametrize("how", ["chat", "append"])
def test_anything_but_a_result_while_a_call_is_open_is_a_409_naming_it(api, openai, session_id, how):
    assert append(api, session_id, asks(call("a"))).status_code == 201
    before = stored(api, session_id)
    for messages in ([{"role": "user", "content": "and?"}], [result("a"), result("a")], [asks(call("c"))]):
        path = f"/sessions/{session_id}/{'chat' if how == 'chat' else 'history'}"
        answer = api.post(path, {"messages": messages})
        if len(messages) == 2:  # a second answer to one call: the 422 of a result that answers nothing
            assert answer.status_code == 422, answer.json
            continue
        assert answer.status_code == 409, answer.json
        error = answer.json["error"]
        assert error["code"] == "tool_calls_pending" and "a" in error["message"], error
        assert error["details"][0] == {**error["details"][0], "field": "messages.0", "open_tool_calls": ["a"]}
    assert openai.requests == [] and stored(api, session_id) == before
    assert append(api, session_id, result("a"), {"role": "user", "content": "and?"}).status_code == 201


def test_one_bodys_own_call_must_be_answered_before_its_next_message(api, openai, session_id):
    answer = append(api, session_id, asks(call("a"), call("b")), result("a"), {"role": "user", "content": "x"})
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["details"][0]["field"] == "messages.2"
    ends_open = api.post(f"/sessions/{session_id}/chat", {"messages": [asks(call("a"))]})
    assert ends_open.status_code == 422 and ends_open.json["error"]["details"][0]["field"] == "messages"
    no_recall = api.post(f"/sessions/{session_id}/chat", {"messages": [asks(call("a")), result("a")], "recall": False})
    assert no_recall.status_code == 200, no_recall.json  # the call is in the chat itself
    assert openai.requests and separated(openai.bodies[0]["messages"]) == []
    assert stored(api, session_id)[-1]["role"] == "assistant"
    assert append(api, session_id, asks(call("z"))).status_code == 201
    recall_off = api.post(f"/sessions/{session_id}/chat", {"messages": [result("z")], "recall": False})
    assert recall_off.status_code == 422 and recall_off.json["error"]["details"][0]["field"] == "recall"
    assert len(openai.requests) == 1


def test_bedrock_is_never_sent_a_call_without_its_results(api, session_id):
    append(api, session_id, {"role": "user", "content": "weather?"}, asks(call("a"), call("b", "get_time")))
    client = RecordingConverse(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "18 C at noon"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 5, "outputTokens": 3},
        }
    )
    with model_provider(bedrock_module.Bedrock(client)):
        partial = api.post(f"/sessions/{session_id}/chat", {"messages": [result("a")], "tools": [CLOCK]})
        assert partial.status_code == 409 and client.requests == [], partial.json
        whole = api.post(
            f"/sessions/{session_id}/chat", {"messages": [result("a"), result("b", "noon")], "tools": [CLOCK]}
        )
    assert whole.status_code == 200, whole.json
    turns = client.requests[0]["messages"]
    assert [block.get("toolUse", {}).get("toolUseId") for block in turns[-2]["content"]] == ["a", "b"]
    assert [block["toolResult"]["toolUseId"] for block in turns[-1]["content"]] == ["a", "b"]
    assert separated(stored(api, session_id)) == []


def test_a_result_in_the_middle_cannot_be_deleted_alone_and_the_last_units_can(api, session_id):
    items = append(api, session_id, asks(call("a"), call("b")), result("a"), result("b")).json["items"]
    assert append(api, session_id, {"role": "assistant", "content": "done"}).status_code == 201
    before = stored(api, session_id)
    refused = api.delete(f"/sessions/{session_id}/history/{items[1]['id']}")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "tool_result_required", refused.json
    assert stored(api, session_id) == before
    assert append(api, session_id, {"role": "user", "content": "still open to appends"}).status_code == 201
    # at the end of the history, a result may go: its call is open again, and still last
    assert api.delete(f"/sessions/{session_id}/history?after={items[2]['id']}").status_code == 202
    assert api.delete(f"/sessions/{session_id}/history/{items[1]['id']}").status_code == 202
    assert api.get(f"/sessions/{session_id}/context").json["pending_tool_calls"] == ["a"]
    assert append(api, session_id, result("a", "again")).status_code == 201
    assert separated(stored(api, session_id)) == []


def test_a_history_written_before_the_rule_gives_contexts_without_the_separated_unit(api, table, session_id):
    """Sessions written before issue 20 may hold assistant(a, b), tool a, assistant, tool b: a
    model refuses that, so the context leaves the broken unit out and says truncated."""
    from chalicelib.shared import clock
    from chalicelib.store.keys import message_ids, message_positions

    legacy = [asks(call("a"), call("b")), result("a"), {"role": "assistant", "content": "hm"}, result("b")]
    legacy.append({"role": "user", "content": "next"})
    stamped = []
    for message in legacy:
        at = clock.now()
        stamped.append({"name": None, "content": None, **message, "id": message_ids(at, 1)[0], "created_at": at})
    table.put_messages("alice", session_id, [(message_positions([m])[0], m) for m in stamped])
    context = api.get(f"/sessions/{session_id}/context").json
    assert [m["role"] for m in context["messages"]] == ["system", "assistant", "user"]
    assert context["truncated"] is True and separated(context["messages"]) == []


def test_no_mix_of_appends_chats_deletes_and_rewinds_separates_a_call_from_its_results(api, model, session_id):
    """A seeded random walk over every way to change a history; after each step the stored history
    and the context keep the rule, and the session's open calls are those of its last unit."""
    import random

    rng = random.Random(20)
    made = 0
    for _ in range(80):
        history = api.get(f"/sessions/{session_id}/history?limit=1000").json["items"]
        pending = api.get(f"/sessions/{session_id}/context").json["pending_tool_calls"]
        step = rng.choice(["user", "calls", "results", "some-results", "chat", "delete", "rewind"])
        if step == "user":
            append(api, session_id, {"role": "user", "content": "u"})
        elif step == "calls":
            made += 1
            append(api, session_id, asks(*(call(f"c{made}x{n}") for n in range(rng.randint(1, 3)))))
        elif step in ("results", "some-results") and pending:
            answering = pending if step == "results" else pending[: rng.randint(1, len(pending))]
            append(api, session_id, *(result(call_id) for call_id in answering))
        elif step == "chat":
            api.post(f"/sessions/{session_id}/chat", {"messages": [result(c) for c in pending] or [result("x")]})
        elif step == "delete" and history:
            api.delete(f"/sessions/{session_id}/history/{rng.choice(history)['id']}")
        elif step == "rewind" and history:
            api.delete(f"/sessions/{session_id}/history?after={rng.choice(history)['id']}")
        now = api.get(f"/sessions/{session_id}/history?limit=1000").json["items"]
        assert separated(now) == [], (step, [(m["role"], m.get("tool_call_id")) for m in now])
        context = api.get(f"/sessions/{session_id}/context").json
        assert separated(context["messages"]) == [], step
        last = next((m for m in reversed(now) if m["role"] != "tool"), None)
        open_now = [c["id"] for c in (last or {}).get("tool_calls") or []]
        answered = {m.get("tool_call_id") for m in now[now.index(last) + 1 :]} if last else set()
        assert context["pending_tool_calls"] == [c for c in open_now if c not in answered], step
