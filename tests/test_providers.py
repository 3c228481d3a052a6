"""Chat end to end through the model providers (chalicelib/providers):

- the OpenAI-compatible provider against a real chat-completions server on loopback (a scripted
  fake that records every request), through the HTTP API;
- the real julep 0.3.9 SDK's `sessions.chat` against make run's HTTP front and the same fake;
- Amazon Bedrock's Converse API with botocore's Stubber;
- `import app` stays free of the provider modules (cold start).

A failed model call must store nothing and answer the service's one error shape.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import ANY, Stubber

from chalicelib import providers
from chalicelib.providers import bedrock as bedrock_module
from conftest import KEYS, OPENAI_API_KEY, REPLY, completion

API_KEY = OPENAI_API_KEY
SYSTEM = "hi\n\nInstructions:\n- be kind"  # conftest's session situation and agent instructions
REPO = Path(__file__).resolve().parent.parent


def history(api, session_id: str) -> list[tuple[str, Any, Any]]:
    answer = api.get(f"/sessions/{session_id}/history")
    assert answer.status_code == 200, answer.json
    return [(m["role"], m["content"], m["name"]) for m in answer.json["items"]]


def chat(api, session_id: str, **body: Any):
    body.setdefault("messages", [{"role": "user", "content": "hello", "name": "Ann"}])
    return api.post(f"/sessions/{session_id}/chat", body)


def seed_history(api, session_id: str) -> list[tuple[str, Any, Any]]:
    answer = api.post(
        f"/sessions/{session_id}/history",
        {
            "messages": [
                {"role": "user", "content": "earlier question", "name": "Ann"},
                {"role": "assistant", "content": "earlier answer"},
            ]
        },
    )
    assert answer.status_code in (200, 201), answer.json
    return history(api, session_id)


def assert_error(answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.json
    assert set(answer.json) == {"error"}
    assert set(answer.json["error"]) == {"code", "message", "details"}
    assert answer.json["error"]["code"] == code
    assert isinstance(answer.json["error"]["message"], str) and answer.json["error"]["message"]
    return answer.json["error"]


# --- OpenAI-compatible: what the provider receives ----------------------------------------------


def test_the_provider_gets_the_agents_model_the_key_and_the_assembled_messages(api, session_id, openai):
    answer = chat(
        api,
        session_id,
        messages=[{"role": "user", "content": "hello", "name": "Ann"}, {"role": "user", "content": "are you there?"}],
    )
    assert answer.status_code == 200, answer.json

    [request] = openai.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert request["headers"]["content-type"].startswith("application/json")
    body = request["json"]
    assert body["model"] == "julep-ai/samantha-1-turbo"  # the agent's (default) model
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "hello", "name": "Ann"},
        {"role": "user", "content": "are you there?"},
    ]
    assert "stream" not in body and "tools" not in body


def test_a_base_url_alone_selects_the_provider_and_sends_no_authorization(api, session_id, fake_model, monkeypatch):
    """A local Ollama or vLLM needs no key: OPENAI_BASE_URL alone is enough."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{fake_model.port}/v1/")
    assert chat(api, session_id).status_code == 200
    [request] = fake_model.requests
    assert request["path"] == "/v1/chat/completions"
    assert "authorization" not in request["headers"]


def test_the_provider_can_be_named_explicitly(api, session_id, openai, monkeypatch):
    monkeypatch.setenv("SESSIONS_MODEL_PROVIDER", " OpenAI ")
    assert chat(api, session_id).status_code == 200
    assert len(openai.requests) == 1


def test_the_model_goes_through_the_aliases(api, session_id, openai, monkeypatch):
    monkeypatch.setenv("SESSIONS_MODEL_ALIASES", '{"julep-ai/samantha-1-turbo":"llama3"}')
    assert chat(api, session_id).status_code == 200
    other_agent = api.post("/agents", {"name": "Max", "about": "x", "model": "gpt-4o-mini"}).json["id"]
    other = api.post("/sessions", {"agent_id": other_agent, "situation": "s"}).json["id"]
    assert chat(api, other).status_code == 200
    assert [body["model"] for body in openai.bodies] == ["llama3", "gpt-4o-mini"]


def test_history_comes_between_the_system_message_and_the_new_messages(api, session_id, openai):
    seed_history(api, session_id)
    assert chat(api, session_id, messages=[{"role": "user", "content": "and now?"}]).status_code == 200
    assert openai.bodies[0]["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "earlier question", "name": "Ann"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "and now?"},
    ]


def test_generation_settings_pass_through(api, session_id, openai):
    settings = {
        "max_tokens": 64,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["\n\n", "END"],
        "seed": 42,
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
        "logit_bias": {"50256": -100},
        "response_format": {"type": "json_object"},
    }
    answer = chat(api, session_id, **settings, stream=False, remember=True, recall=True)
    assert answer.status_code == 200, answer.json
    body = openai.bodies[0]
    for name, value in settings.items():
        assert body[name] == value, name
    for name in ("stream", "remember", "recall", "record", "preset", "tools", "tool_choice"):
        assert name not in body, name


def test_the_agents_default_settings_go_under_the_chats_own(api, openai):
    agent = api.post(
        "/agents",
        {
            "name": "Sara",
            "about": "coach",
            "default_settings": {"temperature": 0.2, "max_tokens": 50, "top_p": 0.9, "stop": "END"},
        },
    ).json["id"]
    session = api.post("/sessions", {"agent_id": agent, "situation": "s"}).json["id"]
    assert chat(api, session, temperature=0.7, stop=["STOP"]).status_code == 200
    body = openai.bodies[0]
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["stop"]) == (0.7, 50, 0.9, ["STOP"])


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(
    "settings, field, why",
    [
        ({"temperature": "hot"}, "default_settings.temperature", "float_type"),
        ({"temperature": 99}, "default_settings.temperature", "less_than_equal"),
        ({"temprature": 0.5}, "default_settings.temprature", "extra_forbidden"),
        ({"max_tokens": 0}, "default_settings.max_tokens", "greater_than_equal"),
        ({"stream": True}, "default_settings.stream", "value_error"),
    ],
)
def test_default_settings_are_held_to_the_chats_rules_when_written(api, table, method, settings, field, why):
    """Issue 12, item 5: they were accepted (201), and then every chat of the agent was a 422."""
    from conftest import scan_all

    agent = api.post("/agents", {"name": "Sara", "about": "coach"}).json["id"]
    before = scan_all(table)
    path = "/agents" if method == "POST" else f"/agents/{agent}"
    body = (
        {"name": "Sara", "about": "coach", "default_settings": settings}
        if method != "PATCH"
        else {"default_settings": settings}
    )
    error = assert_error(api.request(method, path, body), 422, "validation_error")
    assert [(d["field"], d["type"]) for d in error["details"]] == [(field, why)], error
    assert scan_all(table) == before
    assert api.patch(f"/agents/{agent}", {"default_settings": {"temperature": 0.5, "top_p": None}}).status_code == 200


def test_an_invalid_default_setting_stored_before_it_was_checked_is_a_422_at_chat(api, table, openai):
    agent = api.post("/agents", {"name": "Sara", "about": "coach"}).json["id"]
    session = api.post("/sessions", {"agent_id": agent, "situation": "s"}).json["id"]
    table.client.update_item(  # written before default_settings were checked when written
        TableName=table.table,
        Key={"pk": {"S": f"dev#alice#agent#{agent}"}, "sk": {"S": "#record"}},
        UpdateExpression="SET default_settings = :s",
        ExpressionAttributeValues={":s": {"M": {"temperature": {"N": "9"}}}},
    )
    error = assert_error(chat(api, session), 422, "validation_error")
    assert "default_settings" in json.dumps(error)
    assert openai.requests == []
    assert history(api, session) == []


# --- OpenAI-compatible: the answer ----------------------------------------------------------------


def test_the_answer_is_a_chat_response_and_the_exchange_is_remembered(api, session_id, openai):
    answer = chat(api, session_id, messages=[{"role": "user", "content": "hello", "name": "Ann"}])
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert set(body) == {"id", "finish_reason", "response", "usage", "jobs", "doc_ids"}
    assert body["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert body["jobs"] == []
    assert body["doc_ids"] == {"agent_doc_ids": [], "user_doc_ids": []}
    [[reply]] = body["response"]
    assert set(reply) == {"id", "role", "content", "name", "created_at"}
    assert (reply["role"], reply["content"], reply["name"]) == ("assistant", REPLY, None)
    assert reply["id"] == body["id"] and reply["created_at"]

    stored = api.get(f"/sessions/{session_id}/history").json["items"]
    assert [(m["role"], m["content"], m["name"]) for m in stored] == [
        ("user", "hello", "Ann"),
        ("assistant", REPLY, None),
    ]
    assert stored[-1]["id"] == reply["id"] and stored[-1]["created_at"] == reply["created_at"]


def test_several_input_messages_are_stored_in_order_before_the_reply(api, session_id, openai):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one", "name": "Ann"},
        {"role": "user", "content": "two"},
    ]
    assert chat(api, session_id, messages=messages).status_code == 200
    assert history(api, session_id) == [
        ("system", "be brief", None),
        ("user", "one", "Ann"),
        ("user", "two", None),
        ("assistant", REPLY, None),
    ]


@pytest.mark.parametrize(
    "given, expected",
    [
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("stop", "stop"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reason_passes_through(api, session_id, openai, given, expected):
    openai.answer(body=completion(finish_reason=given))
    answer = chat(api, session_id)
    assert answer.status_code == 200, answer.json
    assert answer.json["finish_reason"] == expected


def test_usage_is_counted_here_when_the_provider_gives_none(api, session_id, openai):
    body = completion()
    del body["usage"]
    openai.answer(body=body)
    usage = chat(api, session_id).json["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_second_chat_sends_the_first_exchange(api, session_id, openai):
    openai.answer(body=completion("first reply"))
    openai.answer(body=completion("second reply"))
    assert chat(api, session_id, messages=[{"role": "user", "content": "first", "name": "Ann"}]).status_code == 200
    assert chat(api, session_id, messages=[{"role": "user", "content": "second"}]).status_code == 200
    assert openai.bodies[1]["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "first", "name": "Ann"},
        {"role": "assistant", "content": "first reply"},
        {"role": "user", "content": "second"},
    ]
    assert history(api, session_id) == [
        ("user", "first", "Ann"),
        ("assistant", "first reply", None),
        ("user", "second", None),
        ("assistant", "second reply", None),
    ]


@pytest.mark.parametrize("flag", ["remember", "record"])
def test_remember_false_stores_nothing(api, session_id, openai, flag):
    before = seed_history(api, session_id)
    answer = chat(api, session_id, **{flag: False})
    assert answer.status_code == 200, answer.json
    [[reply]] = answer.json["response"]
    assert reply["content"] == REPLY and reply["id"] and reply["created_at"]
    assert history(api, session_id) == before


def test_recall_false_sends_no_history_but_still_remembers(api, session_id, openai):
    before = seed_history(api, session_id)
    assert chat(api, session_id, recall=False, messages=[{"role": "user", "content": "fresh"}]).status_code == 200
    assert openai.bodies[0]["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "fresh"}]
    assert history(api, session_id) == before + [("user", "fresh", None), ("assistant", REPLY, None)]


# --- OpenAI-compatible: failures store nothing --------------------------------------------------


def test_provider_500_is_a_502(api, session_id, openai):
    before = seed_history(api, session_id)
    openai.answer(500, {"error": {"message": "internal"}})
    assert_error(chat(api, session_id), 502, "model_provider_failed")
    assert history(api, session_id) == before


def test_provider_400_is_a_502_with_the_providers_reason(api, session_id, openai):
    before = seed_history(api, session_id)
    openai.answer(
        400,
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens",
                "type": "invalid_request_error",
                "param": "messages",
                "code": None,
            }
        },
    )
    error = assert_error(chat(api, session_id), 502, "model_provider_failed")
    assert "maximum context length is 8192 tokens" in error["message"]
    assert history(api, session_id) == before


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("echo", [API_KEY, "sk-test-" + "*" * 12 + API_KEY[-6:]], ids=["whole", "masked"])
def test_a_refused_key_never_leaks(api, session_id, openai, status, echo):
    """OpenAI's 401 names the key it was given (masked but for its end); none of it comes back."""
    before = seed_history(api, session_id)
    openai.answer(
        status,
        {
            "error": {
                "message": f"Incorrect API key provided: {echo}. You can find your API key at ...",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
    )
    answer = chat(api, session_id)
    assert_error(answer, 502, "model_provider_failed")
    assert API_KEY.encode() not in answer.body
    assert API_KEY[-6:].encode() not in answer.body
    assert history(api, session_id) == before


@pytest.mark.parametrize("status", [400, 404, 429])
@pytest.mark.parametrize("echo", [API_KEY, "sk-test-" + "*" * 12 + API_KEY[-6:]], ids=["whole", "masked"])
def test_the_api_key_is_redacted_from_other_provider_errors(api, session_id, openai, status, echo):
    openai.answer(status, {"error": {"message": f"bad request from {echo}", "type": "invalid_request_error"}})
    answer = chat(api, session_id)
    error = assert_error(answer, 502, "model_provider_failed")
    assert API_KEY.encode() not in answer.body
    assert API_KEY[-6:].encode() not in answer.body
    assert str(status) in error["message"]
    assert history(api, session_id) == []


@pytest.mark.parametrize(
    "body",
    [{"error": "bad model " + "y" * 5000}, {"error": {"message": "z" * 5000}}, b"<html>" + b"q" * 5000 + b"</html>"],
    ids=["string", "object", "html"],
)
def test_a_long_provider_error_is_cut_short(api, session_id, openai, body):
    openai.answer(400, body)
    error = assert_error(chat(api, session_id), 502, "model_provider_failed")
    assert len(error["message"]) < 500


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b"",
        {"choices": []},
        {"object": "list"},
        {"choices": [{"message": {"role": "assistant", "content": 5}}]},
    ],
    ids=["html", "empty", "no-choices", "not-a-completion", "content-not-text"],
)
def test_an_unreadable_200_is_a_502(api, session_id, openai, body):
    before = seed_history(api, session_id)
    openai.answer(200, body)
    assert_error(chat(api, session_id), 502, "model_provider_failed")
    assert history(api, session_id) == before


def test_a_reply_too_long_for_history_is_a_502(api, session_id, openai):
    before = seed_history(api, session_id)
    openai.answer(body=completion("x" * (64 * 1024 + 1)))
    assert_error(chat(api, session_id), 502, "model_provider_failed")
    assert history(api, session_id) == before


def test_a_slow_provider_is_a_504(api, session_id, openai, monkeypatch):
    monkeypatch.setenv("SESSIONS_MODEL_TIMEOUT", "1")
    before = seed_history(api, session_id)
    openai.answer(body=completion(), delay=10)
    started = time.monotonic()
    error = assert_error(chat(api, session_id), 504, "model_provider_timeout")
    assert time.monotonic() - started < 4
    assert "nothing was stored" in error["message"]
    assert history(api, session_id) == before


def test_a_closed_port_is_a_502(api, session_id, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    before = seed_history(api, session_id)
    answer = chat(api, session_id)
    assert_error(answer, 502, "model_provider_failed")
    assert API_KEY not in json.dumps(answer.json)
    assert history(api, session_id) == before


def test_no_provider_configured_is_a_503_that_says_how(api, session_id):
    answer = chat(api, session_id)
    error = assert_error(answer, 503, "model_provider_not_configured")
    assert "OPENAI_BASE_URL" in error["message"]
    assert history(api, session_id) == []


def test_an_unknown_provider_is_a_503(api, session_id, openai, monkeypatch):
    monkeypatch.setenv("SESSIONS_MODEL_PROVIDER", "nonsense")
    error = assert_error(chat(api, session_id), 503, "model_provider_not_configured")
    assert "nonsense" in error["message"]
    assert openai.requests == []
    assert history(api, session_id) == []


# --- what context assembly adds to a chat -------------------------------------------------------


def turn(n: int) -> str:
    return f"turn {n} " + "word " * 9


def over_budget_adaptive_session(api, session_id) -> list[tuple[str, Any, Any]]:
    """14 stored turns that do not fit a budget of 200 beside the system message and a new one."""
    answer = api.post(
        f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": turn(n)} for n in range(14)]}
    )
    assert answer.status_code in (200, 201), answer.json
    answer = api.patch(f"/sessions/{session_id}", {"token_budget": 200, "context_overflow": "adaptive"})
    assert answer.status_code == 200, answer.json
    return history(api, session_id)


def test_an_adaptive_chat_summarizes_through_the_same_provider(api, session_id, openai):
    before = over_budget_adaptive_session(api, session_id)
    openai.answer(body=completion("Ann counted turns."))
    openai.answer(body=completion(REPLY))
    answer = chat(api, session_id, messages=[{"role": "user", "content": "hello"}])
    assert answer.status_code == 200, answer.json
    assert answer.json["response"][0][0]["content"] == REPLY

    summarize, reply = openai.bodies
    assert summarize["model"] == reply["model"] == "julep-ai/samantha-1-turbo"
    assert 0 < summarize["max_tokens"] <= 50  # at most a quarter of the budget
    assert "turn 0 " in summarize["messages"][-1]["content"]  # the oldest turn is folded
    assert reply["messages"][0] == {"role": "system", "content": SYSTEM}
    assert {
        "role": "system",
        "name": "summary",
        "content": "Summary of the earlier conversation: Ann counted turns.",
    } in reply["messages"]
    assert reply["messages"][-2:] == [{"role": "user", "content": turn(13)}, {"role": "user", "content": "hello"}]
    assert {"role": "user", "content": turn(0)} not in reply["messages"]
    assert api.get(f"/sessions/{session_id}").json["summary"] == "Ann counted turns."
    assert history(api, session_id) == before + [("user", "hello", None), ("assistant", REPLY, None)]


def test_a_failed_summary_fails_the_chat_and_stores_nothing(api, session_id, openai):
    before = over_budget_adaptive_session(api, session_id)
    openai.answer(500, {"error": {"message": "overloaded"}})
    assert_error(chat(api, session_id), 502, "model_provider_failed")
    assert len(openai.requests) == 1
    assert api.get(f"/sessions/{session_id}").json["summary"] is None
    assert history(api, session_id) == before


def test_a_failed_reply_after_a_summary_stores_no_messages(api, session_id, openai):
    before = over_budget_adaptive_session(api, session_id)
    openai.answer(body=completion("Ann counted turns."))
    openai.answer(500, {"error": {"message": "overloaded"}})
    assert_error(chat(api, session_id), 502, "model_provider_failed")
    assert len(openai.requests) == 2
    assert history(api, session_id) == before


def test_a_chat_over_budget_with_null_overflow_is_a_422_before_the_provider(api, session_id, openai):
    api.patch(f"/sessions/{session_id}", {"token_budget": 5})
    assert_error(chat(api, session_id), 422, "context_over_budget")
    assert openai.requests == []
    assert history(api, session_id) == []


def test_render_templates_reach_the_model_rendered(api, agent_id, user_id, openai):
    session = api.post(
        "/sessions",
        {
            "agent_id": agent_id,
            "user_id": user_id,
            "render_templates": True,
            "situation": "You talk to {{ user.name }} as {{ agent.name }}.",
        },
    ).json["id"]
    answer = chat(api, session)
    assert answer.status_code == 200, answer.json
    assert openai.bodies[0]["messages"][0] == {
        "role": "system",
        "content": "You talk to Ann as Sara.\n\nInstructions:\n- be kind",
    }


# --- validation: the provider is never called ---------------------------------------------------

HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": HELLO, "stream": True},
        {"messages": HELLO, "temperature": 3},
        {"messages": HELLO, "top_p": 1.5},
        {"messages": HELLO, "max_tokens": 0},
        {"messages": HELLO, "unknown_field": 1},
        {"messages": HELLO, "tools": [{"type": "function", "function": {"name": "f g", "parameters": {}}}]},
        {"messages": HELLO, "tool_choice": "sometimes"},
        {"messages": []},
        {"messages": HELLO * 50},
        {"messages": [{"role": "auto", "content": "hello"}]},
        {"messages": [{"role": "user"}]},
        {},
    ],
    ids=[
        "stream",
        "temperature",
        "top_p",
        "max_tokens",
        "unknown",
        "tools",
        "tool_choice",
        "empty",
        "fifty",
        "role-auto",
        "no-content",
        "no-messages",
    ],
)
def test_invalid_chat_input_is_a_422(api, session_id, openai, body):
    error = assert_error(api.post(f"/sessions/{session_id}/chat", body), 422, "validation_error")
    assert error["details"], error
    assert openai.requests == []
    assert history(api, session_id) == []


def test_fortynine_messages_are_accepted(api, session_id, openai):
    assert chat(api, session_id, messages=HELLO * 49).status_code == 200
    assert len(history(api, session_id)) == 50


def test_chat_on_a_missing_session_is_a_404(api, openai):
    assert_error(chat(api, "9bb48ef4-b6f7-4dd8-a5ea-ab775e2e8d1b"), 404, "not_found")
    assert openai.requests == []


def test_chat_on_another_developers_session_is_a_404(api, session_id, openai):
    assert_error(chat(api.as_("bob"), session_id), 404, "not_found")
    assert openai.requests == []
    assert history(api, session_id) == []


# --- the real julep 0.3.9 SDK -------------------------------------------------------------------


@pytest.fixture
def sdk(table, openai):
    """make run's HTTP front (as tests/test_julep_sdk.py runs it) and the SDK's client for it."""
    from julep import Client

    import app as app_module
    from infra.local_gateway import serve_in_thread

    server = serve_in_thread(app_module.app)
    yield Client(api_key=KEYS["alice"], base_url=server.url)
    server.shutdown()
    server.server_close()


def test_the_sdks_chat_and_history(sdk, openai):
    agent = sdk.agents.create(name="Sara", about="A coach", instructions=["Be kind"])
    user = sdk.users.create(name="Ann", about="A user")
    session = sdk.sessions.create(agent_id=agent.id, user_id=user.id, situation="You are Sara")

    answer = sdk.sessions.chat(
        session_id=session.id,
        messages=[{"role": "user", "content": "hi", "name": "Ann"}],
        max_tokens=100,
        temperature=0.5,
    )
    assert answer.response[0][0].content == REPLY
    assert answer.response[0][0].role == "assistant"
    assert answer.finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (11, 7, 18)

    [body] = openai.bodies
    assert body["messages"] == [
        {"role": "system", "content": "You are Sara\n\nInstructions:\n- Be kind"},
        {"role": "user", "content": "hi", "name": "Ann"},
    ]
    assert (body["max_tokens"], body["temperature"]) == (100, 0.5)

    items = sdk.sessions.history(session_id=session.id)
    assert [(m.role, m.content) for m in items] == [("user", "hi"), ("assistant", REPLY)]
    assert items[0].name == "Ann"


# --- Amazon Bedrock Converse ----------------------------------------------------------------------


def converse_answer(
    text: str = "Bedrock says hi", stop_reason: str = "end_turn", input_tokens: int = 21, output_tokens: int = 5
) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop_reason,
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": 12},
    }


@pytest.fixture
def bedrock_client():
    return boto3.client("bedrock-runtime", region_name="us-east-1")


@pytest.fixture
def stubber(bedrock_client):
    """A stubbed Converse installed as the provider for this test."""
    with Stubber(bedrock_client) as stub:
        providers.use_provider(bedrock_module.Bedrock(bedrock_client))
        try:
            yield stub
        finally:
            providers.use_provider(None)
        stub.assert_no_pending_responses()


def simple_request(**extra: Any) -> dict:
    return {
        "modelId": "julep-ai/samantha-1-turbo",
        "system": [{"text": SYSTEM}],
        "messages": [{"role": "user", "content": [{"text": "hello"}]}],
        **extra,
    }


def test_the_environment_selects_bedrock(api, session_id, bedrock_client, monkeypatch):
    monkeypatch.setenv("SESSIONS_MODEL_PROVIDER", "bedrock")
    monkeypatch.setenv("SESSIONS_MODEL_ALIASES", '{"julep-ai/samantha-1-turbo":"anthropic.claude-3-haiku"}')
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # bedrock wins over it
    monkeypatch.setattr(bedrock_module, "_client", bedrock_client)
    with Stubber(bedrock_client) as stub:
        stub.add_response("converse", converse_answer(), simple_request(modelId="anthropic.claude-3-haiku"))
        answer = api.post(f"/sessions/{session_id}/chat", {"messages": HELLO})
        stub.assert_no_pending_responses()
    assert answer.status_code == 200, answer.json
    assert answer.json["response"][0][0]["content"] == "Bedrock says hi"
    assert answer.json["usage"] == {"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26}
    assert history(api, session_id) == [("user", "hello", None), ("assistant", "Bedrock says hi", None)]


def test_the_converse_request_adapts_roles_and_settings(api, session_id, stubber):
    api.post(
        f"/sessions/{session_id}/history",
        {"messages": [{"role": "assistant", "content": "Welcome!"}, {"role": "assistant", "content": "How are you?"}]},
    )
    stubber.add_response(
        "converse",
        converse_answer(),
        {
            "modelId": "julep-ai/samantha-1-turbo",
            "system": [{"text": SYSTEM}, {"text": "answer in French"}],
            "messages": [
                {"role": "user", "content": [{"text": ANY}]},  # Converse must start with the user
                {"role": "assistant", "content": [{"text": "Welcome!"}, {"text": "How are you?"}]},
                {"role": "user", "content": [{"text": "hello"}, {"text": "fine, thanks"}, {"text": "result: 4"}]},
            ],
            "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        },
    )
    answer = api.post(
        f"/sessions/{session_id}/chat",
        {
            "messages": [
                {"role": "system", "content": "answer in French"},
                {"role": "user", "content": "hello", "name": "Ann"},
                {"role": "user", "content": "fine, thanks"},
                {"role": "function", "content": "result: 4", "name": "calc"},
            ],
            "max_tokens": 100,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "seed": 7,
            "frequency_penalty": 0.1,
        },
    )
    assert answer.status_code == 200, answer.json


def test_converse_gets_the_stop_list_as_given(api, session_id, stubber):
    stubber.add_response("converse", converse_answer(), simple_request(inferenceConfig={"stopSequences": ["A", "B"]}))
    assert api.post(f"/sessions/{session_id}/chat", {"messages": HELLO, "stop": ["A", "B"]}).status_code == 200


def test_the_first_converse_turn_is_a_user_turn_with_text(api, session_id, stubber):
    captured: list[dict] = []
    stubber.client.meta.events.register(
        "before-parameter-build.bedrock-runtime.Converse", lambda params, **_: captured.append(params)
    )
    api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "assistant", "content": "Welcome!"}]})
    stubber.add_response("converse", converse_answer(), None)
    assert api.post(f"/sessions/{session_id}/chat", {"messages": HELLO, "recall": True}).status_code == 200
    turns = captured[0]["messages"]
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user"]
    assert turns[0]["content"][0]["text"].strip()


def test_an_adaptive_chat_over_bedrock_summarizes_then_answers(api, session_id, stubber):
    before = over_budget_adaptive_session(api, session_id)
    stubber.add_response(
        "converse",
        converse_answer("Ann counted turns."),
        {
            "modelId": "julep-ai/samantha-1-turbo",
            "system": [{"text": ANY}],
            "messages": [{"role": "user", "content": [{"text": ANY}]}],
            "inferenceConfig": {"maxTokens": 50},
        },
    )
    stubber.add_response(
        "converse",
        converse_answer(),
        {
            "modelId": "julep-ai/samantha-1-turbo",
            "system": [{"text": SYSTEM}, {"text": "Summary of the earlier conversation: Ann counted turns."}],
            "messages": [{"role": "user", "content": ANY}],
        },
    )
    answer = api.post(f"/sessions/{session_id}/chat", {"messages": HELLO})
    assert answer.status_code == 200, answer.json
    assert answer.json["response"][0][0]["content"] == "Bedrock says hi"
    assert history(api, session_id) == before + [("user", "hello", None), ("assistant", "Bedrock says hi", None)]


@pytest.mark.parametrize(
    "stop_reason, finish_reason",
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ],
)
def test_converse_stop_reasons_map_to_finish_reasons(api, session_id, stubber, stop_reason, finish_reason):
    stubber.add_response("converse", converse_answer(stop_reason=stop_reason), simple_request())
    answer = api.post(f"/sessions/{session_id}/chat", {"messages": HELLO})
    assert answer.status_code == 200, answer.json
    assert answer.json["finish_reason"] == finish_reason


@pytest.mark.parametrize(
    "code, status",
    [
        ("ThrottlingException", 429),
        ("AccessDeniedException", 403),
        ("ValidationException", 400),
        ("ModelTimeoutException", 408),
    ],
)
def test_a_converse_client_error_is_a_502_and_stores_nothing(api, session_id, stubber, code, status):
    before = seed_history(api, session_id)
    stubber.add_client_error(
        "converse", service_error_code=code, service_message=f"{code} happened", http_status_code=status
    )
    error = assert_error(api.post(f"/sessions/{session_id}/chat", {"messages": HELLO}), 502, "model_provider_failed")
    assert code in error["message"]
    assert history(api, session_id) == before


def test_a_converse_read_timeout_is_a_504_and_stores_nothing(api, session_id, bedrock_client, monkeypatch):
    def too_slow(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="x")

    monkeypatch.setattr(bedrock_client, "converse", too_slow)
    providers.use_provider(bedrock_module.Bedrock(bedrock_client))
    try:
        before = seed_history(api, session_id)
        assert_error(api.post(f"/sessions/{session_id}/chat", {"messages": HELLO}), 504, "model_provider_timeout")
        assert history(api, session_id) == before
    finally:
        providers.use_provider(None)


def test_a_converse_answer_without_a_message_is_a_502(api, session_id, bedrock_client, monkeypatch):
    monkeypatch.setattr(bedrock_client, "converse", lambda **_: {"output": {}, "stopReason": "end_turn"})
    providers.use_provider(bedrock_module.Bedrock(bedrock_client))
    try:
        assert_error(api.post(f"/sessions/{session_id}/chat", {"messages": HELLO}), 502, "model_provider_failed")
        assert history(api, session_id) == []
    finally:
        providers.use_provider(None)


# --- cold start -----------------------------------------------------------------------------------


def test_import_app_loads_no_provider_module_nor_jinja():
    script = (
        "import json, sys, app\n"
        "heavy = ['chalicelib.providers.openai_compatible', 'chalicelib.providers.bedrock', 'jinja2']\n"
        "print(json.dumps([name for name in heavy if name in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
