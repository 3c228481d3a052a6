"""Cascading deletes past one batch, interrupted and resumed; concurrent updates that lose nothing."""

from __future__ import annotations

import threading

import pytest

from chalicelib.rules import deletes, history, records
from chalicelib.rules.kinds import AGENTS, SESSIONS
from chalicelib.shared.errors import DeletionInProgress
from conftest import count_conflicts, mentioning, table_keys

# Cascades across Query pages and BatchWriteItem batches, and concurrent writers: on DynamoDB Local too.
pytestmark = pytest.mark.real_engine


def append(api, session_id: str, count: int) -> None:
    for start in range(0, count, 50):
        batch = [{"role": "user", "content": f"m{n}"} for n in range(start, min(count, start + 50))]
        assert api.post(f"/sessions/{session_id}/history", {"messages": batch}).status_code == 201


def test_history_longer_than_a_query_page_and_many_batches_is_deleted_whole(api, table, session_id):
    append(api, session_id, 260)  # > 200 keys per Query page, > 10 BatchWriteItem calls
    history = api.get(f"/sessions/{session_id}/history?limit=1000").json["items"]
    assert [m["content"] for m in history] == [f"m{n}" for n in range(260)]

    assert api.delete(f"/sessions/{session_id}/history").status_code == 202
    assert api.get(f"/sessions/{session_id}/history").json == {"items": [], "next_cursor": None}
    assert api.get(f"/sessions/{session_id}").status_code == 200
    assert not [k for k in mentioning(table, session_id) if k[1].startswith("msg#")]

    append(api, session_id, 230)
    assert api.delete(f"/sessions/{session_id}").status_code == 202
    assert mentioning(table, session_id) == set()


def test_an_agent_delete_past_its_budget_answers_503_and_the_retry_finishes_it(
    api, table, agent_id, user_id, monkeypatch
):
    sessions = [api.post("/sessions", {"agent_id": agent_id, "user_id": user_id}).json["id"] for _ in range(3)]
    for session_id in sessions:
        append(api, session_id, 30)
    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", -1.0)  # every check finds the budget spent

    stopped = api.delete(f"/agents/{agent_id}")
    assert stopped.status_code == 503
    assert stopped.json["error"]["code"] == "deletion_in_progress"
    assert stopped.headers["Retry-After"] == "1"
    assert api.get(f"/agents/{agent_id}").status_code == 404  # gone at once, cascade or not
    assert mentioning(table, *sessions)  # the cascade has not run yet

    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", 20.0)
    finished = api.delete(f"/agents/{agent_id}")  # the repeat finishes the purge; the agent was gone already
    assert finished.status_code == 404, finished.json
    assert mentioning(table, agent_id, *sessions) == set()
    assert not [k for k in table_keys(table) if k[0].endswith("#purge")]
    assert api.delete(f"/agents/{agent_id}").status_code == 404
    assert api.get(f"/users/{user_id}").status_code == 200
    assert api.get("/sessions").json == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("in_background", [True, False], ids=["stream", "request"])
def test_a_delete_of_what_is_deleted_already_is_a_404_while_its_purge_runs_and_after(
    api, table, session_id, monkeypatch, in_background
):
    """Issue 20: a second DELETE answered 202 while the first's purge ran and 404 once it was done.
    One answer now: 404, as a GET answers, whatever the purge's state."""
    append(api, session_id, 60)
    if in_background:  # a consumer of the stream would purge: here nobody does until we say so
        monkeypatch.setenv("SESSIONS_CASCADES", "stream")
    first = api.delete(f"/sessions/{session_id}")
    assert first.status_code == 202, first.json
    assert bool(table.pending_purges("alice")) is in_background
    while_running = api.delete(f"/sessions/{session_id}")
    assert while_running.status_code == 404 and while_running.json["error"]["code"] == "not_found"
    assert deletes.finish_pending_deletes(table, "alice") == int(in_background)
    assert mentioning(table, session_id) == set()
    done = api.delete(f"/sessions/{session_id}")
    assert done.status_code == 404 and done.json == while_running.json


def test_a_cascade_that_crashed_midway_is_finished_by_the_sweep(api, table, agent_id, monkeypatch):
    sessions = [api.post("/sessions", {"agent_id": agent_id}).json["id"] for _ in range(3)]
    for session_id in sessions:
        append(api, session_id, 60)
    real_batch = table.delete_history_batch
    calls = {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("Lambda timed out")
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(table, "delete_history_batch", crash_on_third)
    with pytest.raises(RuntimeError):
        deletes.delete(table, AGENTS, "alice", agent_id)
    monkeypatch.setattr(table, "delete_history_batch", real_batch)
    assert mentioning(table, *sessions), "the crash left work behind"
    assert {kind for kind, _ in table.pending_purges("alice")} == {"agent", "session"}

    assert deletes.finish_pending_deletes(table, "alice") == 2
    assert mentioning(table, agent_id, *sessions) == set()
    assert table.pending_purges("alice") == []
    assert deletes.finish_pending_deletes(table, "alice") == 0


def test_clearing_history_past_its_budget_answers_503_and_the_retry_finishes(api, table, session_id):
    append(api, session_id, 450)  # three Query pages of 200
    with pytest.raises(DeletionInProgress):
        history.clear(table, "alice", session_id, budget_seconds=-1.0)
    # hidden from every read at once; the purge has only begun
    assert api.get(f"/sessions/{session_id}/history?limit=1000").json["items"] == []
    assert 0 < len([k for k in mentioning(table, session_id) if k[1].startswith("msg#")]) < 450
    assert api.delete(f"/sessions/{session_id}/history").status_code == 202
    assert api.get(f"/sessions/{session_id}/history").json == {"items": [], "next_cursor": None}


def test_concurrent_patches_of_one_session_all_survive(calls_atomic, session_id, monkeypatch):
    """Eight writers merge their own metadata key at once: versioned writes retry, none is lost.
    Driven through the service layer: chalice keeps one current_request per app, so its test
    client cannot carry concurrent requests (a Lambda container serves one at a time anyway)."""
    table = calls_atomic
    conflicts = count_conflicts(monkeypatch, table, "replace")
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        barrier.wait()
        try:
            records.update(
                table,
                SESSIONS,
                "alice",
                session_id,
                SESSIONS.patch_model.model_validate({"metadata": {f"writer{n}": n}}),
                replace=False,
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    metadata = records.get(table, SESSIONS, "alice", session_id).answer.metadata
    assert metadata == {"db_uuid": "1234", **{f"writer{n}": n for n in range(8)}}
    assert conflicts, "the writers never collided, so this run proved nothing"
