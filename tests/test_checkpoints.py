"""A session as a LangGraph thread: its checkpoints and pending writes over HTTP (rules/checkpoints.py).
The LangGraph saver over these routes is held to LangGraph's own conformance suite in
tests/frameworks/test_langgraph.py; these are the routes' own rules, on both engines where the
engine's limits matter."""

from __future__ import annotations

import base64

import pytest

from chalicelib.rules import deletes
from chalicelib.tools import consistency


def blob(data: bytes = b"state", kind: str = "msgpack") -> dict:
    return {"type": kind, "data": base64.b64encode(data).decode()}


def put(api, sid, cid, ns="", parent=None, metadata=None, data=b"state"):
    body = {"checkpoint_ns": ns, "parent_checkpoint_id": parent, "checkpoint": blob(data), "metadata": metadata or {}}
    return api.put(f"/sessions/{sid}/checkpoints/{cid}", body)


def ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.json
    return [c["checkpoint_id"] for c in answer.json["items"]]


@pytest.mark.real_engine
def test_a_checkpoint_round_trips_with_its_writes_and_lists_newest_first(api, session_id):
    for n in range(5):
        stored = put(
            api, session_id, f"c{n}", parent=f"c{n - 1}" if n else None, metadata={"step": n, "source": "loop"}
        )
        assert stored.status_code == 200, stored.json
    writes = {"task_id": "t1", "task_path": "p", "writes": [{"channel": "a", "idx": 0, "value": blob(b"x")}]}
    assert api.post(f"/sessions/{session_id}/checkpoints/c4/writes", writes).json == {"stored": 1}
    got = api.get(f"/sessions/{session_id}/checkpoints/c4?checkpoint_ns=").json
    assert (got["parent_checkpoint_id"], got["metadata"], got["checkpoint"]) == (
        "c3",
        {"step": 4, "source": "loop"},
        blob(),
    )
    assert got["pending_writes"] == [{"task_id": "t1", "channel": "a", "value": blob(b"x"), "task_path": "p", "idx": 0}]
    assert ids(api.get(f"/sessions/{session_id}/checkpoints?checkpoint_ns=")) == ["c4", "c3", "c2", "c1", "c0"]
    assert ids(api.get(f"/sessions/{session_id}/checkpoints?checkpoint_ns=&before=c3&limit=1")) == ["c2"]
    first = api.get(f"/sessions/{session_id}/checkpoints?limit=2&checkpoint_ns=").json
    rest = api.get(f"/sessions/{session_id}/checkpoints?limit=2&checkpoint_ns=&cursor={first['next_cursor']}")
    assert ids(rest) == ["c2", "c1"]
    filtered = api.get(f'/sessions/{session_id}/checkpoints?metadata_filter={{"step": 2}}')
    assert ids(filtered) == ["c2"]


@pytest.mark.real_engine
def test_namespaces_are_apart_and_listed_together_when_none_is_named(api, session_id):
    put(api, session_id, "a1", ns="")
    put(api, session_id, "a2", ns="child:1")
    put(api, session_id, "a3", ns="child")  # a prefix of the other's name: still its own
    assert ids(api.get(f"/sessions/{session_id}/checkpoints?checkpoint_ns=child")) == ["a3"]
    assert ids(api.get(f"/sessions/{session_id}/checkpoints?checkpoint_ns=child:1")) == ["a2"]
    assert ids(api.get(f"/sessions/{session_id}/checkpoints")) == ["a3", "a2", "a1"]
    assert api.get(f"/sessions/{session_id}/checkpoints/a2?checkpoint_ns=").status_code == 404


@pytest.mark.real_engine
def test_writes_are_kept_as_first_written_but_special_channels_are_written_over(api, session_id):
    put(api, session_id, "c1")
    path = f"/sessions/{session_id}/checkpoints/c1/writes"
    first = {"task_id": "t", "writes": [{"channel": "a", "idx": 0, "value": blob(b"1")}]}
    again = {"task_id": "t", "writes": [{"channel": "a", "idx": 0, "value": blob(b"2")}]}
    special = [
        {"task_id": "t", "writes": [{"channel": "__error__", "idx": -1, "value": blob(v)}]} for v in (b"e1", b"e2")
    ]
    assert [api.post(path, body).json["stored"] for body in (first, again, *special)] == [1, 0, 1, 1]
    writes = api.get(f"/sessions/{session_id}/checkpoints/c1").json["pending_writes"]
    assert [(w["channel"], base64.b64decode(w["value"]["data"])) for w in writes] == [("__error__", b"e2"), ("a", b"1")]
    # before its checkpoint (LangGraph saves checkpoints in the background): kept, shown once it comes
    assert api.post(f"/sessions/{session_id}/checkpoints/c2/writes", first).json == {"stored": 1}
    assert api.get(f"/sessions/{session_id}/checkpoints/c2").status_code == 404
    put(api, session_id, "c2")
    assert len(api.get(f"/sessions/{session_id}/checkpoints/c2").json["pending_writes"]) == 1
    gone = api.post("/sessions/00000000-0000-4000-8000-000000000000/checkpoints/c1/writes", first)
    assert gone.status_code == 404


@pytest.mark.real_engine
def test_a_checkpoint_at_the_item_limit_is_stored_and_one_past_it_is_refused_clearly(api, session_id):
    from chalicelib.rules.models import MAX_CHECKPOINT_BYTES

    assert put(api, session_id, "big", data=b"x" * (MAX_CHECKPOINT_BYTES - 100)).status_code == 200
    refused = put(api, session_id, "bigger", data=b"x" * (MAX_CHECKPOINT_BYTES + 1))
    assert refused.status_code == 422 and refused.json["error"]["details"][0]["type"] == "object_too_large"
    assert "one DynamoDB item" in refused.json["error"]["message"]
    assert ids(api.get(f"/sessions/{session_id}/checkpoints")) == ["big"]


def test_a_missing_session_is_a_404_and_bad_input_a_4xx(api, session_id):
    other = "00000000-0000-4000-8000-000000000000"
    assert put(api, other, "c1").status_code == 404
    assert api.get(f"/sessions/{other}/checkpoints").status_code == 404
    assert api.get(f"/sessions/{session_id}/checkpoints/none").status_code == 404
    assert put(api, session_id, "bad%23id").status_code == 400  # a # would reach into the item's key
    bad = api.put(f"/sessions/{session_id}/checkpoints/c1", {"checkpoint": {"type": "t", "data": "w+"}})
    assert bad.status_code == 422
    assert api.get(f"/sessions/{session_id}/checkpoints?checkpoint_ns={'n' * 300}").status_code == 400
    assert api.get(f"/sessions/{session_id}/checkpoints?limit=0").status_code == 400


@pytest.mark.real_engine
def test_deleting_the_session_takes_its_checkpoints(api, table, session_id):
    for n in range(30):
        put(api, session_id, f"c{n:02d}")
        api.post(
            f"/sessions/{session_id}/checkpoints/c{n:02d}/writes",
            {"task_id": "t", "writes": [{"channel": "a", "idx": 0, "value": blob()}]},
        )
    assert api.delete(f"/sessions/{session_id}").status_code == 202
    deletes.finish_pending_deletes(table, "alice")
    report = consistency.check(table, "alice")
    assert report["orphaned_checkpoints"] == [] and report["orphaned_messages"] == []
    assert not any(sk.startswith("ckpt#") for _, sk in _keys(table))


def test_one_checkpoint_deleted_with_its_writes(api, session_id):
    put(api, session_id, "c1")
    put(api, session_id, "c2")
    api.post(
        f"/sessions/{session_id}/checkpoints/c1/writes",
        {"task_id": "t", "writes": [{"channel": "a", "idx": 0, "value": blob()}]},
    )
    assert api.delete(f"/sessions/{session_id}/checkpoints/c1?checkpoint_ns=").status_code == 202
    assert ids(api.get(f"/sessions/{session_id}/checkpoints")) == ["c2"]
    assert api.delete(f"/sessions/{session_id}/checkpoints/c1").status_code == 404


def _keys(table):
    from conftest import table_keys

    return table_keys(table)
