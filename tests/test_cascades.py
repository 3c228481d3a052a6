"""Cascades from the table's stream (issue 15, in part): the handler fed the real stream records of
moto and of DynamoDB Local (the Streams API), delivered once, twice, after a crash, and a TTL
removal (whose REMOVE no local engine emits: built from the record's real image)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from streams import Stream, event, removed_by_ttl

from chalicelib.rules import cascades, models
from chalicelib.tools import consistency
from chalicelib.web import stream
from conftest import mentioning

pytestmark = [pytest.mark.real_engine, pytest.mark.stream]


def clean(table) -> bool:
    report = consistency.check(table, "alice")
    return report["missing"] == [] and report["orphaned"] == [] and report.get("pending", []) == []


def deleted_without_its_cascade(api, table, session_id: str) -> None:
    """What a DELETE that does only its transaction leaves: the record gone, the marker put."""
    record = table.get("alice", "session", session_id)
    from chalicelib.rules.kinds import SESSIONS

    table.delete("alice", "session", record, SESSIONS.terms(record), SESSIONS.parents(record))


def test_a_marker_on_the_stream_purges_a_sessions_history(api, table, session_id):
    feed = Stream(table)
    api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": str(n)} for n in range(50)]})
    deleted_without_its_cascade(api, table, session_id)
    assert len(mentioning(table, session_id)) > 50  # its history and its marker wait
    batch = event(feed.records())
    assert stream.handle(table, batch) == 1
    assert mentioning(table, session_id) == set()
    assert clean(table)
    assert stream.handle(table, batch) == 1  # delivered again: the same table
    assert mentioning(table, session_id) == set()


def test_a_consumer_that_crashes_midway_is_retried_and_finishes(api, table, session_id, monkeypatch):
    feed = Stream(table)
    for _ in range(5):  # 250 messages: more than one batch of the purge
        api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}] * 50})
    deleted_without_its_cascade(api, table, session_id)
    batch = event(feed.records())
    real = table.delete_history_batch
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the Lambda died here")
        return real(*args, **kwargs)

    monkeypatch.setattr(table, "delete_history_batch", crashing)
    with pytest.raises(RuntimeError):
        stream.handle(table, batch)
    assert mentioning(table, session_id)  # half done: the marker still says what is left
    assert stream.handle(table, batch) == 1  # the event source retries the batch
    assert mentioning(table, session_id) == set()
    assert clean(table)


def test_an_agents_marker_purges_its_sessions_and_their_histories(api, table, agent_id):
    feed = Stream(table)
    sessions = [api.post("/sessions", {"agent_id": agent_id}).json["id"] for _ in range(5)]
    for session_id in sessions:
        api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}] * 3})
    from chalicelib.rules.kinds import AGENTS

    agent = table.get("alice", "agent", agent_id)
    table.delete("alice", "agent", agent, AGENTS.terms(agent), [])
    stream.handle(table, event(feed.records()))
    assert mentioning(table, agent_id, *sessions) == set()
    assert clean(table)


def test_a_ttl_removal_takes_the_entries_and_the_history(api, table, agent_id):
    feed = Stream(table)
    session_id = api.post("/sessions", {"agent_id": agent_id, "ttl": 60, "metadata": {"a": 1}}).json["id"]
    api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}] * 10})
    inserted = [
        r
        for r in feed.records()
        if r["dynamodb"]["Keys"]["sk"]["S"] == "#record" and r["dynamodb"]["Keys"]["pk"]["S"].endswith(session_id)
    ][0]
    removal = removed_by_ttl(table, inserted["dynamodb"]["Keys"])
    assert stream.handle(table, event([removal])) == 1
    assert stream.handle(table, event(feed.records())) >= 0  # the marker's own insert: nothing left
    assert mentioning(table, session_id) == set()
    assert clean(table)
    assert stream.handle(table, event([removal])) == 1  # delivered twice
    stream.handle(table, event(feed.records()))
    assert mentioning(table, session_id) == set()


def test_a_removal_that_ttl_did_not_make_starts_nothing(api, table, session_id):
    image = table.client.get_item(
        TableName=table.table, Key={"pk": {"S": f"dev#alice#session#{session_id}"}, "sk": {"S": "#record"}}
    )
    change = cascades.Change("REMOVE", f"dev#alice#session#{session_id}", "#record", old=None, by_ttl=False)
    assert image and cascades.apply(table, [change]) == 0


# --- DELETE with a stream consumer: 202 at once, whatever hangs below ------------------------------


@pytest.fixture
def stream_mode(monkeypatch):
    monkeypatch.setenv("SESSIONS_CASCADES", "stream")


def test_a_session_with_2000_messages_is_deleted_in_one_request_and_purged_by_the_consumer(
    api, table, session_id, stream_mode, counted
):
    """2,000 messages: ten pages of the purge, none of them in the request (5,000 took 26 s of the
    suite for nothing more)."""
    feed = Stream(table)
    for _ in range(40):
        table_calls = api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}] * 50})
        assert table_calls.status_code == 201
    counted.clear()
    answer = api.delete(f"/sessions/{session_id}")
    assert answer.status_code == 202, answer.json
    # the request: its key, the record, one transaction; no page of the history
    assert dict(counted) == {"get_item": 2, "transact_write_items": 1}
    assert api.get(f"/sessions/{session_id}").status_code == 404
    assert len(mentioning(table, session_id)) > 2000  # the history waits for the consumer
    stream.handle(table, event(feed.records()))
    assert mentioning(table, session_id) == set()
    assert clean(table)


def test_an_agent_with_120_sessions_is_deleted_in_one_request_and_purged_by_the_consumer(
    api, table, agent_id, stream_mode, counted
):
    """120 sessions: the parent term is read in two Query pages of 100, and their deletes and
    purge markers take several batches (250 took 76 s of the suite on DynamoDB Local, 500 took 140)."""
    feed = Stream(table)
    sessions = [api.post("/sessions", {"agent_id": agent_id}).json["id"] for _ in range(120)]
    for session_id in sessions[:5]:
        api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}] * 5})
    counted.clear()
    answer = api.delete(f"/agents/{agent_id}")
    assert answer.status_code == 202 and dict(counted) == {"get_item": 2, "transact_write_items": 1}
    assert api.get(f"/sessions/{sessions[0]}").status_code == 200  # until the consumer runs
    stream.handle(table, event(feed.records()))
    stream.handle(table, event(feed.records()))  # the sessions' own markers, put by the cascade
    assert mentioning(table, agent_id, *sessions) == set()
    assert api.get("/sessions").json["items"] == []
    assert clean(table)


def test_a_forks_marker_is_not_purged_at_its_insert_but_at_its_expiry(api, table, session_id, monkeypatch):
    """A fork of a session from before ids carried positions copies its history under a purge
    marker: the stream must leave that copy alone while it is made (make run once purged a fork
    mid-copy), and clean up a fork that never finished when the marker's TTL removes it."""
    feed = Stream(table)
    api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": str(n)} for n in range(10)]})
    table.client.update_item(
        TableName=table.table,
        Key={"pk": {"S": f"dev#alice#session#{session_id}"}, "sk": {"S": "#record"}},
        UpdateExpression="REMOVE positional_ids",
    )
    fork = api.post(f"/sessions/{session_id}/fork", {}).json["id"]
    stream.handle(table, event(feed.records()))  # the marker's insert and its removal by the fork
    assert [m["content"] for m in api.get(f"/sessions/{fork}/history").json["items"]] == [str(n) for n in range(10)]

    from chalicelib.rules import forks

    def interrupted(*args, **kwargs):
        raise RuntimeError("the Lambda died mid-fork")

    monkeypatch.setattr(table, "create", interrupted)  # dies after the copy, before the session exists
    with pytest.raises(RuntimeError):
        forks.fork(table, "alice", session_id, models.ForkInput())
    monkeypatch.undo()
    records = feed.records()
    stream.handle(table, event(records))
    marker = [r for r in records if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["pk"]["S"].endswith("#purge")][
        -1
    ]
    unfinished = marker["dynamodb"]["Keys"]["sk"]["S"].split("#", 1)[1]
    assert len(mentioning(table, unfinished)) == 11  # its copy and its marker wait
    image = marker["dynamodb"]["NewImage"]
    assert int(image["expires_at"]["N"]) > 0
    removal = removed_by_ttl(table, marker["dynamodb"]["Keys"], image)
    assert stream.handle(table, event([removal])) == 1
    assert mentioning(table, unfinished) == set()
    assert clean(table)


def test_an_agents_ttl_removal_takes_its_sessions_like_its_delete(api, table):
    feed = Stream(table)
    agent_id = api.post("/agents", {"name": "A", "ttl": 60}).json["id"]
    sessions = [api.post("/sessions", {"agent_id": agent_id}).json["id"] for _ in range(3)]
    for session_id in sessions:
        api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}] * 4})
    keys = {"pk": {"S": f"dev#alice#agent#{agent_id}"}, "sk": {"S": "#record"}}
    removal = removed_by_ttl(table, keys)
    feed.records()  # what came before
    assert stream.handle(table, event([removal])) == 1
    stream.handle(table, event(feed.records()))  # the markers the cascade put
    assert mentioning(table, agent_id, *sessions) == set()
    assert clean(table)


class FailureQueue:
    """The on-failure queue as the replay reads it: what Lambda sends for a failed stream batch."""

    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        self.messages = [{"Body": json.dumps(b), "ReceiptHandle": str(n)} for n, b in enumerate(bodies)]

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int, WaitTimeSeconds: int) -> dict[str, Any]:  # noqa: N803
        return {"Messages": self.messages[:MaxNumberOfMessages]}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:  # noqa: N803
        self.messages = [m for m in self.messages if m["ReceiptHandle"] != ReceiptHandle]


def test_a_batch_the_function_gave_up_on_is_replayed_from_its_failure_queue(api, table, session_id, monkeypatch):
    from chalicelib.tools import replay

    feed = Stream(table)
    api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}] * 30})
    deleted_without_its_cascade(api, table, session_id)
    records = feed.records()
    monkeypatch.setattr(table, "delete_history_batch", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("down")))
    for _ in range(3):  # the retries, then Lambda gives up and sends where the batch was
        with pytest.raises(RuntimeError):
            stream.handle(table, event(records))
    monkeypatch.undo()
    shard = feed.client.describe_stream(StreamArn=feed.arn)["StreamDescription"]["Shards"][0]["ShardId"]
    info = {
        "shardId": shard,
        "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
        "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
        "batchSize": len(records),
        "streamArn": feed.arn,
    }
    queue = FailureQueue([{"version": "1.0", "DDBStreamBatchInfo": info}])
    assert mentioning(table, session_id)
    assert replay.replay_failed(table, feed.client, queue, "url") == (1, len(records))
    assert queue.messages == []
    assert mentioning(table, session_id) == set()
    assert clean(table)
