"""Context assembly (GET /sessions/{id}/context and chat): the system message, budgets, the three
overflow modes, the stored summary, and reads that follow the budget rather than the history."""

from __future__ import annotations

import pytest

from chalicelib.rules import history, tokens
from conftest import InterceptedClient

SYSTEM = {"role": "system", "content": "hi\n\nInstructions:\n- be kind", "name": None}


@pytest.fixture
def model(model):
    """The fake model, its summaries saying how many turns they were given."""

    def summary(request: str) -> str:
        turns = request.split("Turns to add:\n")[1]
        return f"S[{turns.count(chr(10)) + 1} turns]"

    model.summary = summary
    return model


def say(table, session_id, *texts):
    history.append_messages(table, "alice", session_id, [{"role": "user", "content": t} for t in texts])


def context(api, session_id):
    answer = api.get(f"/sessions/{session_id}/context")
    assert answer.status_code == 200, answer.json
    return answer.json


def budget(api, session_id, token_budget, overflow):
    answer = api.patch(f"/sessions/{session_id}", {"token_budget": token_budget, "context_overflow": overflow})
    assert answer.status_code == 200, answer.json


def turn(n: int) -> str:
    return f"turn {n} " + "word " * 9


T = 15  # tokens of one turn(n): 11 pieces and the message overhead of 4


def test_the_estimate_is_the_documented_one():
    count = tokens.EstimatingCounter().count_text
    assert count("") == 0
    assert count("hello") == 2 and count("a") == 1 and count("abcd") == 1  # 4 letters a token
    assert count("12345") == 2 and count("123") == 1  # 3 digits a token
    assert count("Hi, you!") == 4  # punctuation 1 each
    assert count("日本語") == 3 and count("   \n\t ") == 0
    assert tokens.count_message({"role": "user", "content": "hello", "name": "Ann"}) == 2 + 1 + 4
    assert tokens.count_message({"role": "user", "content": [{"type": "text", "text": "hello"}]}) == 6
    assert tokens.count_message({"role": "user", "content": turn(1)}) == T
    assert tokens.count_message({"role": "user", "content": turn(10)}) == T
    assert tokens.count_message(SYSTEM) == 12
    assert tokens.clip("one two three four", 3) == "one two"
    assert tokens.clip("short", 10) == "short"


def test_without_a_budget_the_context_is_system_then_all_history(api, table, session_id):
    say(table, session_id, "a", "b")
    history.append_messages(table, "alice", session_id, [{"role": "assistant", "content": "c", "name": "Sara"}])
    got = context(api, session_id)
    assert got["messages"] == [
        SYSTEM,
        {"role": "user", "content": "a", "name": None},
        {"role": "user", "content": "b", "name": None},
        {"role": "assistant", "content": "c", "name": "Sara"},
    ]
    assert got["tokens"] == tokens.count_messages(got["messages"])
    assert (got["truncated"], got["summarized"], got["token_budget"]) == (False, False, None)


def test_a_session_without_situation_or_instructions_has_no_system_message(api, table):
    agent = api.post("/agents", {"name": "Plain"}).json["id"]
    session = api.post("/sessions", {"agent_id": agent}).json["id"]
    say(table, session, "x")
    assert context(api, session)["messages"] == [{"role": "user", "content": "x", "name": None}]


def test_over_budget_with_null_overflow_is_422_and_changes_nothing(api, table, session_id):
    say(table, session_id, *[turn(n) for n in range(10)])
    budget(api, session_id, 100, None)
    before = api.get(f"/sessions/{session_id}").json
    answer = api.get(f"/sessions/{session_id}/context")
    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "context_over_budget"
    assert "token_budget of 100" in answer.json["error"]["message"]
    assert api.get(f"/sessions/{session_id}").json == before
    budget(api, session_id, 1000, None)  # within budget it is fine
    assert len(context(api, session_id)["messages"]) == 11


def test_truncate_keeps_the_newest_turns_that_fit_and_always_the_system_message(api, table, session_id):
    say(table, session_id, *[turn(n) for n in range(10)])
    budget(api, session_id, 12 + T * 3 + 5, "truncate")  # system 12, three turns, 5 spare
    got = context(api, session_id)
    assert got["messages"] == [SYSTEM] + [{"role": "user", "content": turn(n), "name": None} for n in (7, 8, 9)]
    assert got["tokens"] == 12 + T * 3 <= got["token_budget"]
    assert got["truncated"] is True and got["summarized"] is False
    budget(api, session_id, 11, "truncate")  # not even the system message fits
    answer = api.get(f"/sessions/{session_id}/context")
    assert answer.status_code == 422 and answer.json["error"]["code"] == "context_over_budget"


def test_a_context_reads_only_as_far_as_its_budget(api, table, session_id, monkeypatch):
    for start in range(0, 600, 50):
        say(table, session_id, *[turn(n) for n in range(start, start + 50)])
    budget(api, session_id, 12 + T * 5, "truncate")
    read = []

    def counting(name, call):
        answer = call()
        if name == "query":
            read.append(len(answer["Items"]))
        return answer

    monkeypatch.setattr(table, "client", InterceptedClient(table.client, counting))
    got = context(api, session_id)
    assert [m["content"] for m in got["messages"][1:]] == [turn(n) for n in range(595, 600)]
    assert sum(read) <= 25, read  # not 600: a page of 20, one more page at most


def test_adaptive_folds_what_does_not_fit_into_the_stored_summary(api, table, session_id, model):
    say(table, session_id, *[turn(n) for n in range(14)])  # 14 x 15 + 12 = 222 > 200
    budget(api, session_id, 200, "adaptive")
    got = context(api, session_id)
    # reserve = min(1024, 200 // 4) = 50; half of 200 - 12 - 50 - 8 leaves 65: four turns.
    assert [m["content"] for m in got["messages"][2:]] == [turn(n) for n in (10, 11, 12, 13)]
    summary_message = got["messages"][1]
    assert summary_message == {
        "role": "system",
        "name": "summary",
        "content": "Summary of the earlier conversation: S[10 turns]",
    }
    assert got["summarized"] is True and got["tokens"] <= 200
    (call,) = model.calls
    asked = call["messages"][-1]["content"]
    assert "Earlier summary:\n(none)" in asked
    assert [line.split(": ", 1)[1] for line in asked.split("Turns to add:\n")[1].split("\n")] == [
        turn(n) for n in range(10)
    ]  # oldest first, only the folded ones
    assert call["settings"] == {"max_tokens": 50}
    stored = api.get(f"/sessions/{session_id}").json
    assert stored["summary"] == "S[10 turns]" and "summary_until" not in stored

    # It fits now: no new summary until the turns outgrow the budget again.
    assert context(api, session_id)["messages"] == got["messages"]
    assert len(model.calls) == 1
    say(table, session_id, *[turn(n) for n in range(14, 20)])  # still fits: 12 + 22 + 10 turns
    assert context(api, session_id)["summarized"] and len(model.calls) == 1
    say(table, session_id, *[turn(n) for n in range(20, 22)])
    again = context(api, session_id)
    assert len(model.calls) == 2
    asked = model.calls[1]["messages"][-1]["content"]
    assert "Earlier summary:\nS[10 turns]" in asked
    folded = [line.split(": ", 1)[1] for line in asked.split("Turns to add:\n")[1].split("\n")]
    assert folded == [turn(n) for n in range(10, 18)]  # picks up where it left off
    assert [m["content"] for m in again["messages"][2:]] == [turn(n) for n in range(18, 22)]
    assert again["messages"][1]["content"].endswith("S[8 turns]")
    assert again["tokens"] <= 200


def test_adaptive_without_a_provider_is_503_and_stores_nothing(api, table, session_id):
    say(table, session_id, *[turn(n) for n in range(14)])
    budget(api, session_id, 200, "adaptive")
    answer = api.get(f"/sessions/{session_id}/context")
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "model_provider_not_configured"
    assert "OPENAI_BASE_URL" in answer.json["error"]["message"]
    assert api.get(f"/sessions/{session_id}").json["summary"] is None


def test_a_summary_made_while_the_session_changed_is_not_stored(api, table, session_id, model):
    say(table, session_id, *[turn(n) for n in range(14)])
    budget(api, session_id, 200, "adaptive")
    model.on_call = lambda: api.patch(f"/sessions/{session_id}", {"metadata": {"during": True}})
    got = context(api, session_id)
    assert got["summarized"] is True  # this answer still carries it
    stored = api.get(f"/sessions/{session_id}").json
    assert stored["summary"] is None and stored["metadata"]["during"] is True  # the PATCH won


def test_clearing_history_clears_the_summary_from_the_context(api, table, session_id, model):
    say(table, session_id, *[turn(n) for n in range(14)])
    budget(api, session_id, 200, "adaptive")
    assert context(api, session_id)["summarized"] is True
    assert api.delete(f"/sessions/{session_id}/history").status_code == 202
    say(table, session_id, "new start")
    got = context(api, session_id)
    assert got["messages"] == [SYSTEM, {"role": "user", "content": "new start", "name": None}]
    assert got["summarized"] is False


def test_chat_counts_its_new_messages_in_the_budget(api, table, session_id, model):
    say(table, session_id, *[turn(n) for n in range(10)])
    budget(api, session_id, 12 + T * 3, "truncate")
    answer = api.post(f"/sessions/{session_id}/chat", {"messages": [{"role": "user", "content": turn(99)}]})
    assert answer.status_code == 200, answer.json
    sent = model.calls[-1]["messages"]
    assert [m["content"] for m in sent[1:]] == [turn(8), turn(9), turn(99)]
    assert tokens.count_messages(sent) <= 12 + T * 3
    too_long = api.post(f"/sessions/{session_id}/chat", {"messages": [{"role": "user", "content": "word " * 200}]})
    assert too_long.status_code == 422 and too_long.json["error"]["code"] == "context_over_budget"
    assert len(model.calls) == 1


def test_chat_without_recall_sends_no_history(api, table, session_id, model):
    say(table, session_id, "old")
    answer = api.post(
        f"/sessions/{session_id}/chat", {"messages": [{"role": "user", "content": "new"}], "recall": False}
    )
    assert answer.status_code == 200, answer.json
    assert [m["content"] for m in model.calls[-1]["messages"]] == [SYSTEM["content"], "new"]


def test_unknown_query_parameters_are_400(api, session_id):
    answer = api.get(f"/sessions/{session_id}/context?limit=3")
    assert answer.status_code == 400 and answer.json["error"]["code"] == "bad_request"
    assert api.get("/sessions/5b8f2e7e-3a3c-4f53-9d5e-1c1f7a8e9b10/context").status_code == 404


# --- templates -----------------------------------------------------------------------------------


def test_templates_render_with_agent_user_and_session(api, table, model):
    agent = api.post(
        "/agents",
        {"name": "Sara", "instructions": ["Call the user {{ user.name | upper }}", "You are {{ agent.name }}"]},
    ).json["id"]
    user = api.post("/users", {"name": "Ann", "metadata": {"plan": "pro"}}).json["id"]
    session = api.post(
        "/sessions",
        {
            "agent_id": agent,
            "user_id": user,
            "render_templates": True,
            "metadata": {"tier": 2, "tags": ["a", "b"]},
            "situation": "Hello {{ user.name }} on {{ user.metadata.plan }}, tier {{ session.metadata.tier }}"
            "{% for t in session.metadata.tags %} #{{ t }}{% endfor %}",
        },
    ).json["id"]
    got = context(api, session)
    assert got["messages"][0]["content"] == (
        "Hello Ann on pro, tier 2 #a #b\n\nInstructions:\n- Call the user ANN\n- You are Sara"
    )
    # The same text without render_templates is sent as written.
    api.patch(f"/sessions/{session}", {"render_templates": False})
    assert context(api, session)["messages"][0]["content"].startswith("Hello {{ user.name }}")


def test_a_template_that_does_not_parse_is_a_422_when_written_and_nothing_changes(api, agent_id, session_id):
    bad = "Hello {{ user.name }"
    answer = api.post("/sessions", {"agent_id": agent_id, "render_templates": True, "situation": bad})
    assert answer.status_code == 422 and answer.json["error"]["details"][0]["field"] == "situation"
    before = api.get(f"/sessions/{session_id}").json
    for body in ({"render_templates": True, "situation": bad},):
        assert api.patch(f"/sessions/{session_id}", body).status_code == 422
        assert api.put(f"/sessions/{session_id}", body).status_code == 422
    api.patch(f"/sessions/{session_id}", {"situation": bad})  # not a template: stored as text
    assert api.patch(f"/sessions/{session_id}", {"render_templates": True}).status_code == 422
    assert api.get(f"/sessions/{session_id}").json["render_templates"] is False
    assert before["render_templates"] is False


@pytest.mark.parametrize(
    "situation, reason",
    [
        ("Hi {{ user.nmae }}", "nmae"),
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
        ("{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}", ""),
    ],
)
def test_a_template_that_fails_to_render_is_a_422_with_the_reason(api, agent_id, user_id, model, situation, reason):
    session = api.post(
        "/sessions", {"agent_id": agent_id, "user_id": user_id, "render_templates": True, "situation": situation}
    ).json["id"]
    for answer in (
        api.get(f"/sessions/{session}/context"),
        api.post(f"/sessions/{session}/chat", {"messages": [{"role": "user", "content": "hi"}]}),
    ):
        assert answer.status_code == 422, answer.json
        assert answer.json["error"]["code"] == "template_error"
        assert answer.json["error"]["message"].startswith("situation") and reason in answer.json["error"]["message"]
        assert (
            "Traceback" not in answer.json["error"]["message"] and "chalicelib" not in answer.json["error"]["message"]
        )
    assert model.calls == []
    assert api.get(f"/sessions/{session}/history").json["items"] == []
