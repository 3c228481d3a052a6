"""Forks are copy-on-write (issue 21; docs/design.md, "Forks"): a fork reads its parent's messages
in place, so it answers at once at any length. The invariants, on moto and on DynamoDB Local: the
fork reads back exactly the parent's prefix, in order, with its own ids and the same times, from
the moment it answers; appends to either side never show in the other; deleting, rewinding,
clearing or expiring the parent never changes a fork, and no purge takes what a fork reads; a fork
of a fork works; once the last reader goes, what only it kept is purged; and `sessions-admin
check` finds nothing wrong after each step."""

from __future__ import annotations

import pytest
from streams import Stream, event, removed_by_ttl

from chalicelib.store import LINEAGE
from chalicelib.tools import consistency
from chalicelib.web import stream
from conftest import mentioning

pytestmark = pytest.mark.real_engine


def append(api, session_id: str, *contents: str, after: str | None = None) -> list[str]:
    body = {"messages": [{"role": "user", "content": c} for c in contents], **({"after": after} if after else {})}
    answer = api.post(f"/sessions/{session_id}/history", body)
    assert answer.status_code == 201, answer.json
    return [m["id"] for m in answer.json["items"]]


def history(api, session_id: str) -> list[dict]:
    answer = api.get(f"/sessions/{session_id}/history?limit=1000")
    assert answer.status_code == 200, answer.json
    return answer.json["items"]


def contents(api, session_id: str) -> list[str]:
    return [m["content"] for m in history(api, session_id)]


def fork(api, session_id: str, up_to: str | None = None) -> str:
    answer = api.post(f"/sessions/{session_id}/fork", {"up_to": up_to} if up_to else {})
    assert answer.status_code == 201, answer.json
    return answer.json["id"]


def assert_clean(table, retained: int = 0) -> None:
    report = consistency.check(table, "alice")
    assert {name: report[name] for name in consistency.PROBLEMS} == {name: [] for name in consistency.PROBLEMS}, report
    assert report["retained"] == retained, report


def assert_reads_well(api, session_id: str) -> None:
    """Every message reads back by its own id, and `after` the last one is taken."""
    items = history(api, session_id)
    for message in items[:3] + items[-3:]:
        one = api.get(f"/sessions/{session_id}/history/{message['id']}")
        assert one.status_code == 200 and one.json["content"] == message["content"], one.json
    if items:
        assert append(api, session_id, "probe", after=items[-1]["id"])
        last = history(api, session_id)[-1]
        assert last["content"] == "probe"
        assert api.delete(f"/sessions/{session_id}/history/{last['id']}").status_code in (200, 202)


@pytest.fixture
def parent(api, agent_id) -> tuple[str, list[str]]:
    session_id = api.post("/sessions", {"agent_id": agent_id, "ttl": 3600}).json["id"]
    return session_id, append(api, session_id, *(f"m{n}" for n in range(30)))


def test_a_fork_reads_the_prefix_with_its_own_ids_and_copies_nothing(api, table, parent, counted):
    parent_id, ids = parent
    counted.clear()
    fork_id = fork(api, parent_id, up_to=ids[19])
    # one transaction, whatever the length: no message read page by page, none written
    assert counted["transact_write_items"] == 1 and counted.get("batch_write_item", 0) == 0, dict(counted)
    assert {sk for _, sk in mentioning(table, fork_id) if sk.startswith("msg#")} == set()  # nothing copied
    mine, theirs = history(api, fork_id), history(api, parent_id)[:20]
    assert [m["content"] for m in mine] == [f"m{n}" for n in range(20)]
    assert [m["created_at"] for m in mine] == [m["created_at"] for m in theirs]
    assert not {m["id"] for m in mine} & set(ids)  # its own ids
    assert api.get(f"/sessions/{fork_id}/history/{ids[3]}").status_code == 404  # the parent's are not its
    assert api.get(f"/sessions/{parent_id}/history/{mine[3]['id']}").status_code == 404
    assert_reads_well(api, fork_id)
    assert_clean(table)


def test_appends_to_either_side_never_show_in_the_other(api, table, parent):
    parent_id, ids = parent
    fork_id = fork(api, parent_id, up_to=ids[19])
    append(api, fork_id, "fork 1", "fork 2")
    append(api, parent_id, "parent 1")
    assert contents(api, fork_id) == [f"m{n}" for n in range(20)] + ["fork 1", "fork 2"]
    assert contents(api, parent_id) == [f"m{n}" for n in range(30)] + ["parent 1"]
    # the context reads the same history
    context = api.get(f"/sessions/{fork_id}/context").json
    assert [m["content"] for m in context["messages"] if m["role"] == "user"][-2:] == ["fork 1", "fork 2"]
    # `after` takes the fork's own last message and refuses an older one
    last = history(api, fork_id)[-1]["id"]
    assert append(api, fork_id, "fork 3", after=last)
    stale = api.post(f"/sessions/{fork_id}/history", {"messages": [{"role": "user", "content": "x"}], "after": last})
    assert stale.status_code == 409, stale.json
    assert_clean(table)


def test_a_parent_deleted_under_a_live_fork_keeps_what_the_fork_reads_until_the_fork_goes(api, table, parent):
    parent_id, ids = parent
    fork_id = fork(api, parent_id, up_to=ids[19])
    before = contents(api, fork_id)
    assert api.delete(f"/sessions/{parent_id}").status_code == 202
    assert api.get(f"/sessions/{parent_id}").status_code == 404
    assert contents(api, fork_id) == before
    assert_reads_well(api, fork_id)
    kept = {sk for _, sk in mentioning(table, parent_id) if sk.startswith("msg#")}
    assert len(kept) == 20  # the ten past the fork point are purged, the twenty it reads stay
    assert_clean(table, retained=1)
    assert api.delete(f"/sessions/{fork_id}").status_code == 202
    assert mentioning(table, parent_id, fork_id) == set()  # the last reader gone: all of it purged
    assert_clean(table)


def test_a_parent_rewound_and_cleared_under_a_live_fork_never_changes_it(api, table, parent):
    parent_id, ids = parent
    fork_id = fork(api, parent_id, up_to=ids[19])
    assert api.delete(f"/sessions/{parent_id}/history?after={ids[4]}").status_code == 202
    assert contents(api, parent_id) == [f"m{n}" for n in range(5)]
    assert contents(api, fork_id) == [f"m{n}" for n in range(20)]
    assert api.delete(f"/sessions/{parent_id}/history").status_code == 202
    assert contents(api, parent_id) == []
    assert contents(api, fork_id) == [f"m{n}" for n in range(20)]
    assert_reads_well(api, fork_id)
    append(api, parent_id, "again")
    assert contents(api, parent_id) == ["again"]
    assert_clean(table)
    # the twenty the fork read stay in the parent's partition, hidden; the rest is purged
    assert len({sk for _, sk in mentioning(table, parent_id) if sk.startswith("msg#")}) == 21
    assert api.delete(f"/sessions/{fork_id}").status_code == 202
    assert contents(api, parent_id) == ["again"]
    assert len({sk for _, sk in mentioning(table, parent_id) if sk.startswith("msg#")}) == 1
    assert table.get("alice", "session", parent_id).get("hidden") in (None, {})  # ranges tidied away
    assert_clean(table)


def test_a_fork_of_a_fork_reads_both_and_outlives_them(api, table, parent):
    parent_id, ids = parent
    first = fork(api, parent_id, up_to=ids[19])
    own = append(api, first, "a0", "a1", "a2", "a3", "a4")
    second = fork(api, first, up_to=own[2])
    expected = [f"m{n}" for n in range(20)] + ["a0", "a1", "a2"]
    assert contents(api, second) == expected
    assert len(table.get("alice", "session", second)[LINEAGE]) == 2
    assert not {m["id"] for m in history(api, second)} & {m["id"] for m in history(api, first)}
    append(api, second, "b0")
    assert contents(api, first) == [f"m{n}" for n in range(20)] + ["a0", "a1", "a2", "a3", "a4"]
    assert_clean(table)
    assert api.delete(f"/sessions/{parent_id}").status_code == 202
    assert api.delete(f"/sessions/{first}").status_code == 202
    assert contents(api, second) == [*expected, "b0"]
    assert_reads_well(api, second)
    assert_clean(table, retained=2)
    assert api.delete(f"/sessions/{second}").status_code == 202
    assert mentioning(table, parent_id, first, second) == set()
    assert_clean(table)


def test_a_rewind_or_delete_inside_what_a_fork_inherits_changes_only_the_fork(api, table, parent):
    parent_id, ids = parent
    fork_id = fork(api, parent_id, up_to=ids[19])
    mine = [m["id"] for m in history(api, fork_id)]
    assert api.delete(f"/sessions/{fork_id}/history/{mine[2]}").status_code in (200, 202)
    assert api.get(f"/sessions/{fork_id}/history/{mine[2]}").status_code == 404
    assert api.delete(f"/sessions/{fork_id}/history?after={mine[9]}").status_code == 202
    assert contents(api, fork_id) == [f"m{n}" for n in range(10) if n != 2]
    assert contents(api, parent_id) == [f"m{n}" for n in range(30)]
    append(api, fork_id, "new", after=mine[9])
    assert contents(api, fork_id)[-2:] == ["m9", "new"]
    assert_reads_well(api, parent_id)
    assert_clean(table)
    # a fork of the rewound fork reads what it shows, not what it hid
    second = fork(api, fork_id)
    assert contents(api, second) == contents(api, fork_id)
    assert_clean(table)


@pytest.mark.stream
def test_a_parent_that_expires_under_a_live_fork_never_changes_it(api, table, parent):
    parent_id, ids = parent
    feed = Stream(table)
    fork_id = fork(api, parent_id, up_to=ids[19])
    record_key = {"pk": {"S": f"dev#alice#session#{parent_id}"}, "sk": {"S": "#record"}}
    assert stream.handle(table, event([removed_by_ttl(table, record_key)])) == 1
    stream.handle(table, event(feed.records()))  # the marker's insert: the purge
    assert api.get(f"/sessions/{parent_id}").status_code == 404
    assert contents(api, fork_id) == [f"m{n}" for n in range(20)]
    assert_clean(table, retained=1)
    assert api.delete(f"/sessions/{fork_id}").status_code == 202
    assert mentioning(table, parent_id, fork_id) == set()
    assert_clean(table)


@pytest.mark.stream
def test_a_fork_made_while_its_parent_is_rewound_reads_what_the_parent_showed(api, table, parent, monkeypatch):
    """With a stream consumer the rewind's purge comes later: a fork made before it never reads
    the hidden range, and the purge never takes what the fork reads."""
    monkeypatch.setenv("SESSIONS_CASCADES", "stream")
    parent_id, ids = parent
    feed = Stream(table)
    assert api.delete(f"/sessions/{parent_id}/history?after={ids[9]}").status_code == 202
    fork_id = fork(api, parent_id)
    assert contents(api, fork_id) == [f"m{n}" for n in range(10)]
    stream.handle(table, event(feed.records()))
    assert contents(api, fork_id) == [f"m{n}" for n in range(10)]
    assert contents(api, parent_id) == [f"m{n}" for n in range(10)]
    assert len({sk for _, sk in mentioning(table, parent_id) if sk.startswith("msg#")}) == 10
    assert_clean(table)


def test_popping_shared_messages_one_by_one_keeps_one_hidden_range(api, table, parent):
    """Deleting the last message again and again (a framework's pop) where the history is shared
    with a fork: each hides, and the ranges join, so the record never fills with them."""
    parent_id, ids = parent
    fork_id = fork(api, parent_id)
    mine = [m["id"] for m in history(api, fork_id)]
    for message_id in reversed(mine[5:]):
        assert api.delete(f"/sessions/{fork_id}/history/{message_id}").status_code in (200, 202)
    assert contents(api, fork_id) == [f"m{n}" for n in range(5)]
    assert len(table.get("alice", "session", fork_id)["hidden"]) == 1
    for message_id in reversed(ids[10:]):  # the parent's own, which its fork reads: hidden too
        assert api.delete(f"/sessions/{parent_id}/history/{message_id}").status_code in (200, 202)
    assert contents(api, parent_id) == [f"m{n}" for n in range(10)]
    assert len(table.get("alice", "session", parent_id)["hidden"]) == 1
    assert_reads_well(api, fork_id)
    assert_reads_well(api, parent_id)
    assert_clean(table)


def test_the_check_finds_a_fork_whose_reference_is_gone_and_a_reference_whose_fork_is(api, table, parent):
    parent_id, ids = parent
    fork_id = fork(api, parent_id, up_to=ids[9])
    reference = {"pk": {"S": f"dev#alice#session#{parent_id}"}, "sk": {"S": f"fork#{fork_id}"}}
    saved = table.client.get_item(TableName=table.table, Key=reference)["Item"]
    table.client.delete_item(TableName=table.table, Key=reference)
    report = consistency.check(table, "alice")
    assert report["broken_forks"] == [fork_id] and report["orphaned_fork_refs"] == [], report
    table.client.put_item(TableName=table.table, Item=saved)
    table.client.delete_item(
        TableName=table.table, Key={"pk": {"S": f"dev#alice#session#{fork_id}"}, "sk": {"S": "#record"}}
    )
    report = consistency.check(table, "alice")
    assert report["orphaned_fork_refs"] == [f"{parent_id}#{fork_id}"] and report["broken_forks"] == [], report


def test_a_fork_that_stops_reading_its_parent_lets_the_parents_history_go(api, table, parent):
    """A rewind or a clear of a fork into what it inherits cuts its lineage: its references say
    how far it still reads, in the same transaction, and what only it kept is purged."""
    parent_id, ids = parent
    rewound, cleared = fork(api, parent_id), fork(api, parent_id)
    assert api.delete(f"/sessions/{parent_id}").status_code == 202
    assert len({sk for _, sk in mentioning(table, parent_id) if sk.startswith("msg#")}) == 30
    first_five = history(api, rewound)[4]["id"]
    assert api.delete(f"/sessions/{rewound}/history?after={first_five}").status_code == 202
    assert len({sk for _, sk in mentioning(table, parent_id) if sk.startswith("msg#")}) == 30  # the other reads all
    assert api.delete(f"/sessions/{cleared}/history").status_code == 202
    assert len({sk for _, sk in mentioning(table, parent_id) if sk.startswith("msg#")}) == 5
    assert contents(api, rewound) == [f"m{n}" for n in range(5)] and contents(api, cleared) == []
    assert_clean(table, retained=1)
    append(api, cleared, "fresh")
    assert api.delete(f"/sessions/{rewound}").status_code == 202
    assert mentioning(table, parent_id) == set()
    assert contents(api, cleared) == ["fresh"]
    assert_clean(table)


def test_a_fork_reads_at_most_sixteen_sessions_histories(api, table, parent):
    session_id, ids = parent
    for depth in range(16):
        session_id = fork(api, session_id)
        append(api, session_id, f"level {depth}")  # its own stretch, which its fork inherits
    refused = api.post(f"/sessions/{session_id}/fork", {})
    assert refused.status_code == 422, refused.json
    assert refused.json["error"]["details"][0]["type"] == "fork_depth", refused.json
    assert contents(api, session_id)[-2:] == ["level 14", "level 15"]
    assert_clean(table)


def test_a_range_hidden_under_two_forks_waits_for_both(api, table, parent):
    """The original hides a message both forks read; the first fork to go leaves it to the other
    (a purge that keeps all of a range asks the engine nothing: DynamoDB Local refused the empty
    key range, and the stream's consumer retried it for ever)."""
    parent_id, ids = parent
    first, second = fork(api, parent_id), fork(api, parent_id)
    assert api.delete(f"/sessions/{parent_id}/history/{ids[7]}").status_code in (200, 202)
    assert api.delete(f"/sessions/{first}").status_code == 202
    assert len({sk for _, sk in mentioning(table, parent_id) if sk.startswith("msg#")}) == 30
    assert contents(api, second) == [f"m{n}" for n in range(30)]
    assert api.delete(f"/sessions/{second}").status_code == 202
    assert len({sk for _, sk in mentioning(table, parent_id) if sk.startswith("msg#")}) == 29
    assert table.get("alice", "session", parent_id).get("hidden") in (None, {})
    assert contents(api, parent_id) == [f"m{n}" for n in range(30) if n != 7]
    assert_clean(table)
