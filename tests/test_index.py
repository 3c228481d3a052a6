"""Filtered lists served by the index: what they read, cursors, limits, the consistency check."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from chalicelib.rules import lists
from chalicelib.store import index
from chalicelib.tools import consistency
from conftest import InterceptedClient


def q(value) -> str:
    return quote(json.dumps(value))


@pytest.fixture
def reads(table, monkeypatch):
    """Items DynamoDB reads for the store (what it bills), counted from its answers."""
    counter = {"items": 0, "calls": 0}

    def count(name, call):
        answer = call()
        counter["calls"] += 1
        if name in ("query", "scan"):
            counter["items"] += answer.get("ScannedCount", answer.get("Count", 0))
        elif name == "batch_get_item":
            counter["items"] += sum(len(items) for items in answer["Responses"].values())
        elif name == "get_item":
            counter["items"] += 1 if "Item" in answer else 0
        return answer

    monkeypatch.setattr(table, "client", InterceptedClient(table.client, count))
    return counter


def ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.json
    return [item["id"] for item in answer.json["items"]]


def walk(api, path: str, limit: int) -> list[str]:
    """Every id of a list, page by page through next_cursor."""
    seen, cursor = [], None
    separator = "&" if "?" in path else "?"
    for _ in range(100):
        answer = api.get(f"{path}{separator}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        seen += ids(answer)
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the walk did not end")


@pytest.fixture
def seeded(api, agent_id):
    """48 sessions with env=prod, 4 of them also tenant=t1; 3 with tenant=t2 and env=staging."""
    tenant1, tenant2, prod = [], [], []
    for n in range(48):
        metadata = {"env": "prod", "n": n} | ({"tenant": "t1"} if n % 12 == 0 else {})
        sid = api.post("/sessions", {"agent_id": agent_id, "metadata": metadata}).json["id"]
        prod.append(sid)
        if "tenant" in metadata:
            tenant1.append(sid)
    for _ in range(3):
        tenant2.append(
            api.post("/sessions", {"agent_id": agent_id, "metadata": {"env": "staging", "tenant": "t2"}}).json["id"]
        )
    return {"t1": tenant1, "t2": tenant2, "prod": prod}


@pytest.mark.parametrize("wanted", [{"tenant": "t1"}, {"tenant": "t1", "env": "prod"}, {"env": "prod", "tenant": "t1"}])
def test_a_selective_filter_reads_about_what_it_matches(api, seeded, reads, wanted):
    reads["items"] = 0
    got = ids(api.get(f"/sessions?metadata_filter={q(wanted)}&limit=20"))
    assert got == seeded["t1"][::-1]
    # matches 4, page 20: the target is at most 2 x (matches + page size); the scan of 51
    # sessions it replaces would read them all and their entries.
    assert reads["items"] <= 2 * (4 + 20)
    assert reads["items"] <= 1 + 4 + 4 + 8  # key, entries, records, one 8-entry probe of the other term


def test_a_broad_filter_reads_about_one_page(api, seeded, reads):
    reads["items"] = 0
    got = ids(api.get(f"/sessions?metadata_filter={q({'env': 'prod'})}&limit=10"))
    assert got == seeded["prod"][::-1][:10]
    assert reads["items"] <= 1 + 2 * 11  # the key, then 11 entries and records (one more: next page?)


def test_filters_that_no_index_serves_still_answer_exactly(api, agent_id):
    long = "x" * (index.MAX_INDEXED_STRING_BYTES + 1)
    made = {
        name: api.post("/sessions", {"agent_id": agent_id, "metadata": {"v": value}}).json["id"]
        for name, value in [("null", None), ("obj", {"a": [1]}), ("list", [1, 2]), ("long", long), ("short", "x")]
    }
    for name, value in [("null", None), ("obj", {"a": [1]}), ("list", [1, 2]), ("long", long)]:
        assert ids(api.get(f"/sessions?metadata_filter={q({'v': value})}")) == [made[name]]
        assert walk(api, f"/sessions?metadata_filter={q({'v': value})}", 1) == [made[name]]


def test_sessions_list_by_agent_and_user_combines_with_metadata(api, agent_id, user_id):
    other_agent = api.post("/agents", {"name": "other"}).json["id"]
    mine = [
        api.post("/sessions", {"agent_id": agent_id, "user_id": user_id, "metadata": {"k": n % 2}}).json["id"]
        for n in range(4)
    ]
    api.post("/sessions", {"agent_id": other_agent, "user_id": user_id, "metadata": {"k": 0}})
    api.post("/sessions", {"agent_id": agent_id, "metadata": {"k": 0}})
    assert len(ids(api.get(f"/sessions?user_id={user_id}"))) == 5
    assert len(ids(api.get(f"/sessions?agent_id={agent_id}"))) == 5
    assert ids(api.get(f"/sessions?agent_id={agent_id}&user_id={user_id}")) == mine[::-1]
    both = f"/sessions?agent_id={agent_id}&user_id={user_id}&metadata_filter={q({'k': 0})}"
    assert ids(api.get(both)) == [mine[2], mine[0]]
    assert walk(api, both + "&order=asc&sort_by=updated_at", 1) == [mine[0], mine[2]]
    assert api.get("/sessions?agent_id=not-a-uuid").status_code == 400
    assert api.get(f"/agents?agent_id={agent_id}").status_code == 400  # only sessions take it
    assert ids(api.as_("bob").get(f"/sessions?agent_id={agent_id}")) == []


@pytest.mark.parametrize("sort_by", ["created_at", "updated_at"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursor_walks_never_skip_or_repeat(api, agent_id, sort_by, order):
    made = [api.post("/sessions", {"agent_id": agent_id, "metadata": {"g": n % 3}}).json["id"] for n in range(11)]
    for sid in made[::2]:  # reorder by updated_at
        assert api.patch(f"/sessions/{sid}", {"situation": "touched"}).status_code == 200
    query = f"/sessions?sort_by={sort_by}&order={order}"
    everything = ids(api.get(query + "&limit=100"))
    assert sorted(everything) == sorted(made)
    for limit in (1, 2, 5, 11):
        assert walk(api, query, limit) == everything
    filtered = query + f"&metadata_filter={q({'g': 1})}"
    assert walk(api, filtered, 2) == [sid for sid in everything if made.index(sid) % 3 == 1]


def test_offset_pages_and_cursor_pages_agree(api, agent_id):
    for _ in range(7):
        api.post("/sessions", {"agent_id": agent_id})
    by_offset = [sid for offset in range(0, 7, 3) for sid in ids(api.get(f"/sessions?limit=3&offset={offset}"))]
    assert by_offset == walk(api, "/sessions", 3)


def test_cursors_are_bound_to_developer_and_query_and_tamper_proof(api, agent_id):
    for _ in range(3):
        api.post("/sessions", {"agent_id": agent_id, "metadata": {"a": 1}})
    cursor = api.get("/sessions?limit=1").json["next_cursor"]
    assert cursor
    assert api.get(f"/sessions?limit=2&cursor={cursor}").status_code == 200  # limit may change
    payload, signature = cursor.split(".")
    forged = [
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature,
        payload + "." + signature[::-1],
        "garbage",
        "a.b.c",
        "",
        payload,
    ]
    for bad in filter(None, forged):
        answer = api.get(f"/sessions?limit=1&cursor={quote(bad)}")
        assert answer.status_code == 400 and answer.json["error"]["code"] == "bad_request", bad
    assert api.as_("bob").get(f"/sessions?limit=1&cursor={cursor}").status_code == 400
    assert api.get(f"/sessions?limit=1&order=asc&cursor={cursor}").status_code == 400
    assert api.get(f"/sessions?limit=1&metadata_filter={q({'a': 1})}&cursor={cursor}").status_code == 400
    assert api.get(f"/agents?limit=1&cursor={cursor}").status_code == 400
    assert api.get(f"/sessions?limit=1&offset=1&cursor={cursor}").status_code == 400


def test_sort_by_updated_with_a_broad_metadata_term_walks_the_update_order(api, agent_id, monkeypatch):
    made = [api.post("/sessions", {"agent_id": agent_id, "metadata": {"env": "prod"}}).json["id"] for _ in range(6)]
    api.patch(f"/sessions/{made[0]}", {"situation": "newest"})
    expected = [made[0], *made[:0:-1]]
    path = f"/sessions?sort_by=updated_at&metadata_filter={q({'env': 'prod'})}"
    assert ids(api.get(path)) == expected  # gathered and sorted in memory
    monkeypatch.setattr(lists, "GATHER_MAX", 3)  # now too broad to gather: walk the update order
    assert ids(api.get(path)) == expected
    assert walk(api, path, 4) == expected


def test_indexed_values_per_record_are_bounded(api, agent_id):
    limit = index.MAX_INDEXED_VALUES
    at_limit = {f"k{n}": n for n in range(limit)}
    over = api.post("/sessions", {"agent_id": agent_id, "metadata": {**at_limit, "one": "more"}})
    assert over.status_code == 422 and over.json["error"]["details"][0]["field"] == "metadata"
    sid = api.post("/sessions", {"agent_id": agent_id, "metadata": at_limit}).json["id"]
    before = api.get(f"/sessions/{sid}").json
    assert api.patch(f"/sessions/{sid}", {"metadata": {"one": "more"}}).status_code == 422
    assert api.put(f"/sessions/{sid}", {"situation": "s", "metadata": {**at_limit, "x": True}}).status_code == 422
    assert api.get(f"/sessions/{sid}").json == before
    # swapping every indexed value at once is the largest transaction: 87 of 100 actions
    swapped = {f"k{n}": f"v{n}" for n in range(limit)}
    assert api.put(f"/sessions/{sid}", {"situation": "s", "metadata": swapped}).status_code == 200
    assert ids(api.get(f"/sessions?metadata_filter={q({'k7': 'v7'})}")) == [sid]
    assert ids(api.get(f"/sessions?metadata_filter={q({'k7': 7})}")) == []
    # values no index holds do not count against the bound
    unindexed = {f"list{n}": [n] for n in range(limit + 5)}
    assert api.patch(f"/sessions/{sid}", {"metadata": unindexed}).status_code == 200


def test_consistency_check_is_clean_after_everything_and_catches_damage(api, table, agent_id, user_id):
    sessions = [
        api.post("/sessions", {"agent_id": agent_id, "user_id": user_id, "metadata": {"a": n, "b": "x"}}).json["id"]
        for n in range(4)
    ]
    api.patch(f"/sessions/{sessions[0]}", {"metadata": {"a": None, "c": True}})
    api.put(f"/sessions/{sessions[1]}", {"situation": "s", "metadata": {"z": 1}})
    api.post(f"/sessions/{sessions[2]}/history", {"messages": [{"role": "user", "content": "hi"}]})
    api.delete(f"/sessions/{sessions[3]}")
    report = consistency.check(table, "alice")
    assert (report["missing"], report["orphaned"], report["orphaned_messages"]) == ([], [], [])
    assert report["records"] == 5  # agent, user, three sessions

    entry = sorted(k for k in _keys(table) if "#sessions#meta#" in k[0])[0]
    table.client.delete_item(TableName=table.table, Key={"pk": {"S": entry[0]}, "sk": {"S": entry[1]}})
    stray = {"pk": {"S": "dev#alice#sessions#all#by_created"}, "sk": {"S": "2020-01-01T00:00:00.000000Z#x"}}
    table.client.put_item(TableName=table.table, Item=stray)
    table.client.delete_item(
        TableName=table.table, Key={"pk": {"S": f"dev#alice#session#{sessions[2]}"}, "sk": {"S": "#record"}}
    )
    report = consistency.check(table, "alice")
    assert entry in report["missing"]
    assert ("dev#alice#sessions#all#by_created", "2020-01-01T00:00:00.000000Z#x") in report["orphaned"]
    assert report["orphaned_messages"] == [sessions[2]]
    assert consistency.check(table, "bob")["records"] == 0


def _keys(table):
    return {(item["pk"]["S"], item["sk"]["S"]) for item in table.client.scan(TableName=table.table)["Items"]}


def test_sort_by_updated_gathers_a_small_parent_rather_than_a_large_value(api, agent_id, user_id, reads):
    mine = [
        api.post("/sessions", {"agent_id": agent_id, "user_id": user_id, "metadata": {"env": "prod"}}).json["id"]
        for _ in range(2)
    ]
    for _ in range(30):
        api.post("/sessions", {"agent_id": agent_id, "metadata": {"env": "prod"}})
    api.patch(f"/sessions/{mine[0]}", {"situation": "latest"})
    reads["items"] = 0
    path = f"/sessions?user_id={user_id}&sort_by=updated_at&metadata_filter={q({'env': 'prod'})}"
    assert ids(api.get(path)) == [mine[0], mine[1]]
    assert reads["items"] <= 1 + 2 + 8 + 2  # key, the user's 2 entries, one probe round of env, 2 records
