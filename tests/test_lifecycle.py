"""A session's lifecycle (issue 15): ending it. On moto and on DynamoDB Local."""

from __future__ import annotations

import threading
from urllib.parse import urlencode

import pytest

from chalicelib.rules import history, lifecycle
from chalicelib.shared.errors import SessionEnded
from chalicelib.tools import consistency
from conftest import FakeModel, model_provider

pytestmark = pytest.mark.real_engine

HELLO = {"messages": [{"role": "user", "content": "hello"}]}


def listed(api, **params) -> list[str]:
    answer = api.get(f"/sessions?{urlencode(params)}")
    assert answer.status_code == 200, answer.json
    return [item["id"] for item in answer.json["items"]]


def clean(table) -> bool:
    report = consistency.check(table, "alice")
    return report["missing"] == [] and report["orphaned"] == []


def test_an_ended_session_stays_readable_and_listable_and_takes_no_more_messages(api, table, session_id):
    assert api.post(f"/sessions/{session_id}/history", HELLO).status_code == 201
    before = api.get(f"/sessions/{session_id}")
    answer = api.post(f"/sessions/{session_id}/end")
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "ended" and answer.json["ended_at"] >= before.json["updated_at"]
    assert answer.headers["ETag"] != before.headers["ETag"]
    read = api.get(f"/sessions/{session_id}").json
    assert read["status"] == "ended" and read["ended_at"] == answer.json["ended_at"]
    assert listed(api) == [session_id]
    assert [m["content"] for m in api.get(f"/sessions/{session_id}/history").json["items"]] == ["hello"]
    assert api.get(f"/sessions/{session_id}/context").status_code == 200

    refused = api.post(f"/sessions/{session_id}/history", HELLO)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "session_ended", refused.json
    with model_provider(FakeModel()) as fake:
        chat = api.post(f"/sessions/{session_id}/chat", HELLO)
    assert chat.status_code == 409 and chat.json["error"]["code"] == "session_ended"
    assert fake.calls == []  # refused before the model is paid
    assert len(api.get(f"/sessions/{session_id}/history").json["items"]) == 1
    assert clean(table)


def test_ending_is_idempotent_and_final(api, session_id):
    first = api.post(f"/sessions/{session_id}/end")
    again = api.post(f"/sessions/{session_id}/end")
    assert again.status_code == 200 and again.json == first.json
    assert again.headers["ETag"] == first.headers["ETag"]  # nothing written the second time
    for method, body in [("patch", {"status": "active"}), ("put", {"situation": "s", "status": "active"})]:
        undo = getattr(api, method)(f"/sessions/{session_id}", body)
        assert undo.status_code == 422 and "status" in undo.json["error"]["message"], undo.json
    assert api.patch(f"/sessions/{session_id}", {"metadata": {"x": 1}}).status_code == 200  # still editable
    assert api.get(f"/sessions/{session_id}").json["status"] == "ended"


def test_ending_honours_if_match_and_names_what_is_absent(api, session_id):
    assert api.post(f"/sessions/{session_id}/end", headers={"If-Match": '"99"'}).status_code == 412
    assert api.get(f"/sessions/{session_id}").json["status"] == "active"
    assert api.post("/sessions/00000000-0000-4000-8000-000000000000/end").status_code == 404
    assert api.as_("bob").post(f"/sessions/{session_id}/end").status_code == 404
    assert api.get(f"/sessions/{session_id}").json["status"] == "active"


def test_lists_filter_on_status_from_the_index(api, table, agent_id, user_id):
    ids = [api.post("/sessions", {"agent_id": agent_id, "user_id": user_id}).json["id"] for _ in range(6)]
    other_agent = api.post("/agents", {"name": "B"}).json["id"]
    other = api.post("/sessions", {"agent_id": other_agent}).json["id"]
    for session_id in (ids[1], ids[3], other):
        assert api.post(f"/sessions/{session_id}/end").status_code == 200
    newest_first = list(reversed(ids))
    assert listed(api, status="ended") == [other, ids[3], ids[1]]
    assert listed(api, status="active") == [i for i in newest_first if i not in (ids[1], ids[3])]
    assert listed(api, status="ended", agent_id=agent_id) == [ids[3], ids[1]]
    assert listed(api, status="ended", sort_by="updated_at") == [other, ids[3], ids[1]]
    assert listed(api, status="ended", user_id=user_id, metadata_filter="{}") == [ids[3], ids[1]]
    page = api.get("/sessions?status=ended&limit=2").json
    rest = api.get(f"/sessions?{urlencode({'status': 'ended', 'cursor': page['next_cursor']})}").json
    assert [i["id"] for i in page["items"] + rest["items"]] == [other, ids[3], ids[1]]
    assert api.get("/sessions?status=done").status_code == 400
    assert api.get("/agents?status=ended").status_code == 400
    assert clean(table)
    # the ended term holds exactly the ended sessions: a list of them reads them, not the others
    assert api.delete(f"/sessions/{ids[3]}").status_code == 202
    assert listed(api, status="ended") == [other, ids[1]]
    assert clean(table)


def test_an_end_racing_appends_loses_none_and_stores_none_after_it(api, table, session_id):
    """Appends that race the end (in threads, through the service layer: the HTTP test client is
    not thread-safe) are either stored before it or refused; none lands after it."""
    results: list[str] = []

    def appending():
        for n in range(20):
            try:
                history.append(table, "alice", session_id, {"messages": [{"role": "user", "content": str(n)}]})
                results.append("stored")
            except SessionEnded:
                results.append("refused")

    writer = threading.Thread(target=appending)
    writer.start()
    ended = lifecycle.end(table, "alice", session_id)
    writer.join()
    assert set(results) <= {"stored", "refused"} and len(results) == 20
    stored = api.get(f"/sessions/{session_id}/history?limit=100").json["items"]
    assert len(stored) == results.count("stored")
    assert all(m["created_at"] <= ended.answer.ended_at for m in stored)
    assert results[results.count("stored") :] == ["refused"] * results.count("refused")


def test_a_fork_of_an_ended_session_is_active(api, session_id):
    api.post(f"/sessions/{session_id}/history", HELLO)
    api.post(f"/sessions/{session_id}/end")
    fork = api.post(f"/sessions/{session_id}/fork", {}).json["id"]
    assert api.get(f"/sessions/{fork}").json["status"] == "active"
    assert api.post(f"/sessions/{fork}/history", HELLO).status_code == 201
