"""The access patterns of docs/design.md, counted: which DynamoDB calls each operation makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

# What each operation costs in DynamoDB calls, and what a list reads: on DynamoDB Local too.
pytestmark = pytest.mark.real_engine


def calls_of(counted: Counter, action) -> dict[str, int]:
    counted.clear()
    action()
    return dict(counted)


KEY_CHECK = {"get_item": 1}  # every request reads its API key first


def test_each_operation_makes_the_documented_calls(api, counted, agent_id, user_id):
    made = {}
    made["create"] = calls_of(
        counted,
        lambda: made.setdefault(
            "session",
            api.post("/sessions", {"agent_id": agent_id, "user_id": user_id, "metadata": {"a": 1}}).json["id"],
        ),
    )
    sid = made["session"]
    assert made["create"] == {**KEY_CHECK, "transact_write_items": 1}
    assert calls_of(counted, lambda: api.get(f"/sessions/{sid}")) == {"get_item": 2}
    assert calls_of(counted, lambda: api.patch(f"/sessions/{sid}", {"situation": "x"})) == {
        "get_item": 2,
        "transact_write_items": 1,
    }
    # The session read replaces the Query for the newest position: still two round trips.
    assert calls_of(
        counted, lambda: api.post(f"/sessions/{sid}/history", {"messages": [{"role": "user", "content": "hi"}] * 3})
    ) == {"get_item": 2, "transact_write_items": 1}
    # With `after`, the same: the session record names its last message, and the append's
    # condition on the session holds the check until the commit.
    last = api.get(f"/sessions/{sid}/history?order=desc&limit=1").json["items"][0]["id"]
    assert calls_of(
        counted,
        lambda: api.post(f"/sessions/{sid}/history", {"messages": [{"role": "user", "content": "hi"}], "after": last}),
    ) == {"get_item": 2, "transact_write_items": 1}
    assert calls_of(counted, lambda: api.get(f"/sessions/{sid}/history")) == {"get_item": 2, "query": 1}
    # One message by its id: the id names its position, read with the session in one call. Removing
    # it: that read and one transaction, and one Query more when it was the last (for the one before).
    stored = api.get(f"/sessions/{sid}/history").json["items"]
    one = f"/sessions/{sid}/history/{stored[0]['id']}"
    assert calls_of(counted, lambda: api.get(one)) == {**KEY_CHECK, "batch_get_item": 1}
    assert calls_of(counted, lambda: api.delete(one)) == {**KEY_CHECK, "batch_get_item": 1, "transact_write_items": 1}
    last = f"/sessions/{sid}/history/{stored[-1]['id']}"
    assert calls_of(counted, lambda: api.delete(last)) == {
        **KEY_CHECK,
        "batch_get_item": 1,
        "query": 1,
        "transact_write_items": 1,
    }
    # A rewind: find the message, one transaction (the session hiding the range, the check, the
    # marker), then per 200 removed a Query and a BatchWriteItem per 25, the range leaves the
    # session (UpdateItem) and the marker goes.
    left = api.get(f"/sessions/{sid}/history").json["items"]
    assert calls_of(counted, lambda: api.delete(f"/sessions/{sid}/history?after={left[0]['id']}")) == {
        **KEY_CHECK,
        "update_item": 1,
        "batch_get_item": 1,
        "transact_write_items": 1,
        "query": 1,
        "batch_write_item": 1,
        "delete_item": 1,
    }
    assert [m["id"] for m in api.get(f"/sessions/{sid}/history").json["items"]] == [left[0]["id"]]
    # A fork: read the session and its newest message, then one transaction: the new session as a
    # create makes it, the original's fork point, a reference in its partition. Nothing copied.
    assert calls_of(counted, lambda: api.post(f"/sessions/{sid}/fork", {})) == {
        **KEY_CHECK,
        "get_item": 2,
        "query": 1,
        "transact_write_items": 1,
    }
    assert calls_of(counted, lambda: api.get("/sessions")) == {**KEY_CHECK, "query": 1, "batch_get_item": 1}
    # A thread's checkpoint (LangGraph's): written in one transaction with its session's check;
    # read with its writes in one Query; a list is the session's check and one Query a page.
    checkpoint = {"checkpoint": {"type": "t", "data": "eA=="}}
    put = calls_of(counted, lambda: api.put(f"/sessions/{sid}/checkpoints/c1", checkpoint))
    assert put == {**KEY_CHECK, "transact_write_items": 1}
    assert calls_of(counted, lambda: api.get(f"/sessions/{sid}/checkpoints/c1")) == {**KEY_CHECK, "query": 1}
    listed = calls_of(counted, lambda: api.get(f"/sessions/{sid}/checkpoints?checkpoint_ns="))
    assert listed == {"get_item": 2, "query": 1}
    # A delete: the transaction, then the purge: its marker read (the partitions it reads as a
    # fork), a Query for the forks that read its history, a Query per 200 of its checkpoints and
    # writes, per 200 messages a Query and a BatchWriteItem per 25. Here the one message left is
    # what the fork reads: kept, and so is the marker, until the fork goes.
    assert calls_of(counted, lambda: api.delete(f"/sessions/{sid}")) == {
        "get_item": 3,
        "transact_write_items": 1,
        "query": 3,
        "batch_write_item": 1,
    }


def test_tool_calls_cost_what_plain_messages_cost_and_removals_one_query_more(api, counted, session_id, model):
    """The session record keeps its open calls: a call or a result is checked on the session the
    append reads anyway, in the transaction it writes anyway. A removal in a session that made
    calls looks for the call or its results with one Query (docs/design.md "Access patterns")."""
    url = f"/sessions/{session_id}/history"
    plain = calls_of(counted, lambda: api.post(url, {"messages": [{"role": "user", "content": "q"}]}))
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    asking = {"role": "assistant", "content": None, "tool_calls": [call]}
    made: dict = {}
    assert calls_of(counted, lambda: made.setdefault("call", api.post(url, {"messages": [asking]}))) == plain
    result = {"role": "tool", "tool_call_id": "c1", "content": "x"}
    assert calls_of(counted, lambda: made.setdefault("result", api.post(url, {"messages": [result]}))) == plain
    assert made["call"].status_code == made["result"].status_code == 201
    chat = f"/sessions/{session_id}/chat"
    plain_chat = calls_of(counted, lambda: api.post(chat, {"messages": [{"role": "user", "content": "q"}]}))
    tools = [{"type": "function", "function": {"name": "f"}}]
    with_tools = calls_of(
        counted, lambda: api.post(chat, {"messages": [{"role": "user", "content": "q"}], "tools": tools})
    )
    assert with_tools == plain_chat
    # Removing the call takes its result: the message's read, one Query for the results, one
    # transaction; the result was not the last message, so no Query for the one before.
    call_id = made["call"].json["items"][0]["id"]
    assert calls_of(counted, lambda: api.delete(f"{url}/{call_id}")) == {
        **KEY_CHECK,
        "batch_get_item": 1,
        "query": 1,
        "transact_write_items": 1,
    }
    # Removing the last result opens its call again: one Query back for the call, one forward for
    # what follows it (nothing may but its call's other results), one for the message before it
    # (it was the last).
    api.post(url, {"messages": [{**asking, "tool_calls": [{**call, "id": "c2"}]}, {**result, "tool_call_id": "c2"}]})
    answered = api.get(f"{url}?order=desc&limit=1").json["items"][0]["id"]
    assert calls_of(counted, lambda: api.delete(f"{url}/{answered}")) == {
        **KEY_CHECK,
        "batch_get_item": 1,
        "query": 3,
        "transact_write_items": 1,
    }


def test_ending_is_one_read_and_one_write_and_ended_sessions_list_from_their_term(api, counted, session_id):
    assert calls_of(counted, lambda: api.post(f"/sessions/{session_id}/end")) == {
        "get_item": 2,
        "transact_write_items": 1,
    }
    assert calls_of(counted, lambda: api.post(f"/sessions/{session_id}/end")) == {"get_item": 2}  # already ended
    assert calls_of(counted, lambda: api.get("/sessions?status=ended")) == {
        **KEY_CHECK,
        "query": 1,
        "batch_get_item": 1,
    }


def test_a_list_reads_what_it_returns_not_the_whole_collection(api, counted, agent_id):
    for _ in range(120):
        api.post("/sessions", {"agent_id": agent_id})
    pages = []
    # One Query page (capped at 100 entries) and one batch read, not a walk of all 120.
    assert calls_of(counted, lambda: pages.append(api.get("/sessions?limit=5").json["items"])) == {
        "get_item": 1,
        "query": 1,
        "batch_get_item": 1,
    }
    assert len(pages[0]) == 5


def test_importing_the_app_touches_no_network_and_makes_no_client():
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    probe = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network touched at import')\n"
        "socket.socket.connect = refuse\n"
        "import app\n"
        "from chalicelib.store import current as store\n"
        "assert store._store is None, 'a DynamoDB client was made at import'\n"
        "print(len(app.app.routes))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 8


def test_a_filter_no_record_could_match_is_refused_before_any_read(api, counted):
    """Issue 12, item 8: 300 keys cost 301 calls and 2.8 s; 41 conditions likewise 42."""
    from urllib.parse import quote

    impossible = {
        "300 keys": {f"k{n}": n for n in range(300)},
        "41 indexable conditions": {f"k{n}": n for n in range(41)},
    }
    for what, wanted in impossible.items():
        answers = []
        made = calls_of(
            counted, lambda: answers.append(api.get("/sessions?metadata_filter=" + quote(json.dumps(wanted))))
        )
        assert answers[0].status_code == 400, what
        assert made == KEY_CHECK, (what, made)
    assert "at most 40 such values, so none could match" in answers[0].json["error"]["message"]


def test_a_filter_probes_at_most_four_terms_however_many_conditions_it_has(api, counted, agent_id):
    from urllib.parse import quote

    from chalicelib.rules import lists

    metadata = {f"k{n}": 1 for n in range(40)}
    sessions = {api.post("/sessions", {"agent_id": agent_id, "metadata": metadata}).json["id"] for _ in range(20)}
    answers = []
    made = calls_of(
        counted, lambda: answers.append(api.get("/sessions?metadata_filter=" + quote(json.dumps(metadata))))
    )
    assert {s["id"] for s in answers[0].json["items"]} == sessions
    # 4 terms probed to 8, 16 and 32 entries (each holds 20): 12 Queries, not 40 x 3.
    assert made["query"] <= lists.PROBED_TERMS * 5 and made == {**KEY_CHECK, "query": 12, "batch_get_item": 1}, made
