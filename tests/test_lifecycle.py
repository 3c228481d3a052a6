"""A session's lifecycle (issue 15): ending it. On moto and on DynamoDB Local."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from chalicelib.rules import history, lifecycle, models
from chalicelib.shared import clock
from chalicelib.shared.errors import SessionEnded
from chalicelib.tools import consistency
from conftest import FakeModel, model_provider, scan_all

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
                history.append(
                    table,
                    "alice",
                    session_id,
                    models.HistoryAppend.model_validate({"messages": [{"role": "user", "content": str(n)}]}),
                )
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


# --- retention ------------------------------------------------------------------------------------


@pytest.fixture
def moved_clock(monkeypatch):
    """The clock expiries count with, moved by the test (no sleeps)."""
    offset = [0.0]
    real = clock.epoch_seconds
    monkeypatch.setattr(clock, "epoch_seconds", lambda: real() + offset[0])

    def move(seconds: float) -> None:
        offset[0] += seconds

    return move


def test_a_session_with_a_ttl_is_gone_everywhere_from_the_second_it_expires(
    api, table, agent_id, user_id, moved_clock, model
):
    started = clock.epoch_seconds()
    answer = api.post("/sessions", {"agent_id": agent_id, "user_id": user_id, "ttl": 60, "metadata": {"k": "v"}})
    assert answer.status_code == 201, answer.json
    session_id = answer.json["id"]
    keep = api.post("/sessions", {"agent_id": agent_id, "user_id": user_id, "metadata": {"k": "v"}}).json["id"]
    read = api.get(f"/sessions/{session_id}").json
    expires = datetime.strptime(read["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    assert started + 59 <= expires <= started + 61
    message = api.post(f"/sessions/{session_id}/history", HELLO).json["items"][0]["id"]
    lists = [
        "",
        f"agent_id={agent_id}",
        f"user_id={user_id}",
        "metadata_filter=%7B%22k%22%3A%22v%22%7D",
        "status=active",
    ]
    for query in lists:
        assert session_id in [s["id"] for s in api.get(f"/sessions?{query}").json["items"]], query

    moved_clock(expires - clock.epoch_seconds() - 0.5)  # half a second before: still there
    assert api.get(f"/sessions/{session_id}").status_code == 200
    moved_clock(0.5)  # its second has come
    url = f"/sessions/{session_id}"
    for method, path, body in [
        ("get", url, None),
        ("patch", url, {"situation": "x"}),
        ("put", url, {"situation": "x"}),
        ("get", f"{url}/history", None),
        ("post", f"{url}/history", HELLO),
        ("get", f"{url}/history/{message}", None),
        ("delete", f"{url}/history/{message}", None),
        ("delete", f"{url}/history?after={message}", None),
        ("delete", f"{url}/history", None),
        ("get", f"{url}/context", None),
        ("post", f"{url}/chat", HELLO),
        ("post", f"{url}/fork", {}),
        ("post", f"{url}/end", None),
        ("delete", url, None),
    ]:
        answer = getattr(api, method)(path, body) if body is not None else getattr(api, method)(path)
        assert answer.status_code == 404, (method, path, answer.json)
    for query in lists:
        assert [s["id"] for s in api.get(f"/sessions?{query}").json["items"]] == [keep], query
    assert model.calls == []


def test_ttl_bounds_renewal_and_clearing(api, table, agent_id, moved_clock):
    for ttl in (0, -1, 10 * 366 * 24 * 3600 + 1, "60", 1.5, True):
        answer = api.post("/sessions", {"agent_id": agent_id, "ttl": ttl})
        assert answer.status_code == 422 and answer.json["error"]["details"][0]["field"] == "ttl", (ttl, answer.json)
    assert api.get("/sessions").json["items"] == []
    session_id = api.post("/sessions", {"agent_id": agent_id, "ttl": 10}).json["id"]
    assert api.patch(f"/sessions/{session_id}", {"ttl": 1000}).status_code == 200  # renewed from now
    moved_clock(100)
    assert api.get(f"/sessions/{session_id}").status_code == 200
    assert api.patch(f"/sessions/{session_id}", {"ttl": None}).status_code == 200  # cleared
    assert api.get(f"/sessions/{session_id}").json["expires_at"] is None
    assert all("expires_at" not in item for item in scan_all(table) if session_id in item["pk"]["S"] + item["sk"]["S"])
    assert api.put(f"/sessions/{session_id}", {"situation": "s", "ttl": 5}).status_code == 200
    moved_clock(5)
    assert api.get(f"/sessions/{session_id}").status_code == 404


def test_a_records_index_entries_carry_its_expiry_so_ttl_removes_them_with_it(api, table, agent_id):
    session_id = api.post("/sessions", {"agent_id": agent_id, "ttl": 3600, "metadata": {"a": 1}}).json["id"]
    api.post(f"/sessions/{session_id}/history", HELLO)  # moves its update-order entries
    api.patch(f"/sessions/{session_id}", {"ttl": 7200})  # rewrites them all
    record = [i for i in scan_all(table) if i["pk"]["S"].endswith(session_id) and i["sk"]["S"] == "#record"][0]
    entries = [i for i in scan_all(table) if "#sessions#" in i["pk"]["S"] and i["sk"]["S"].endswith(session_id)]
    assert len(entries) == 2 * 2 + 1  # all and agent in two orders, the metadata term in one
    assert {i["expires_at"]["N"] for i in entries} == {record["expires_at"]["N"]}
    report = consistency.check(table, "alice")
    assert report["missing"] == [] and report["orphaned"] == []


def test_lists_read_only_the_live_records_while_expired_ones_wait_for_removal(
    api, table, agent_id, moved_clock, monkeypatch
):
    for _ in range(30):
        api.post("/sessions", {"agent_id": agent_id, "ttl": 10})
    live_ids = [api.post("/sessions", {"agent_id": agent_id}).json["id"] for _ in range(2)]
    moved_clock(11)
    fetched: list[int] = []
    get_many = table.get_many
    monkeypatch.setattr(table, "get_many", lambda d, k, ids: fetched.append(len(ids)) or get_many(d, k, ids))
    assert sorted(s["id"] for s in api.get("/sessions").json["items"]) == sorted(live_ids)
    assert sum(fetched) == 2  # the 30 expired records are never read: their entries are skipped


def test_the_default_retention_of_new_sessions_is_configured(api, agent_id, monkeypatch):
    monkeypatch.setenv("SESSIONS_DEFAULT_TTL", '{"alice": 120, "*": 60}')
    mine = api.get(f"/sessions/{api.post('/sessions', {'agent_id': agent_id}).json['id']}").json
    assert mine["expires_at"] is not None
    explicit = api.post("/sessions", {"agent_id": agent_id, "ttl": 7}).json["id"]
    assert api.get(f"/sessions/{explicit}").json["expires_at"] < mine["expires_at"]
    assert api.get(f"/agents/{agent_id}").json["expires_at"] is None  # sessions only
    agent = api.post("/agents", {"name": "new"}).json["id"]
    assert api.get(f"/agents/{agent}").json["expires_at"] is None


def test_an_expired_agent_or_user_is_gone_and_takes_no_new_sessions(api, moved_clock):
    agent = api.post("/agents", {"name": "A", "ttl": 30}).json["id"]
    user = api.post("/users", {"name": "U", "ttl": 30}).json["id"]
    assert api.post("/sessions", {"agent_id": agent, "user_id": user}).status_code == 201
    moved_clock(30)
    assert api.get(f"/agents/{agent}").status_code == 404 and api.get(f"/users/{user}").status_code == 404
    assert api.get("/agents").json["items"] == [] and api.get("/users").json["items"] == []
    refused = api.post("/sessions", {"agent_id": agent})
    assert refused.status_code == 404 and refused.json["error"]["details"][0]["field"] == "agent_id"


def test_a_bad_default_retention_is_a_503_that_names_the_setting_and_creates_nothing(api, agent_id, monkeypatch):
    monkeypatch.setenv("SESSIONS_DEFAULT_TTL", "-5")
    answer = api.post("/sessions", {"agent_id": agent_id})
    assert answer.status_code == 503 and "SESSIONS_DEFAULT_TTL" in answer.json["error"]["message"], answer.json
    assert api.get("/sessions").json["items"] == []
    assert api.post("/agents", {"name": "still fine"}).status_code == 201
