"""History: a total, stable order under concurrent writers and skewed clocks, atomic appends,
paging by offset and cursor in both orders, limits, and clearing histories of any length."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from chalicelib.rules import history, models
from chalicelib.shared import clock
from chalicelib.shared.errors import NotFound
from chalicelib.store import StoreError
from conftest import FakeModel, count_conflicts, model_provider, table_keys

# Concurrent writers, Query pages and batch deletes: on DynamoDB Local too.
pytestmark = pytest.mark.real_engine


def contents(api, session_id, query="?limit=1000"):
    answer = api.get(f"/sessions/{session_id}/history{query}")
    assert answer.status_code == 200, answer.json
    return [m["content"] for m in answer.json["items"]]


def add(api, session_id, *texts, role="user"):
    answer = api.post(f"/sessions/{session_id}/history", {"messages": [{"role": role, "content": t} for t in texts]})
    assert answer.status_code == 201, answer.json
    return answer.json["items"]


# --- order ---------------------------------------------------------------------------------------


def test_many_writers_lose_nothing_and_keep_each_writers_order(calls_atomic, session_id, monkeypatch):
    """Eight writers append 1 to 3 messages at a time, 15 appends each, with one frozen clock, so
    only the position tells appends apart. They contend for the session (each append moves its
    updated_at): a loser restamps after the winner and tries again. Every message must be stored
    once, each writer's messages in the order it sent them, each append's messages side by side,
    and every append must succeed."""
    table = calls_atomic
    lost_races = count_conflicts(monkeypatch, table, "append_messages")
    frozen = "2026-01-01T00:00:00.000000Z"
    monkeypatch.setattr(clock, "now", lambda: frozen)
    monkeypatch.setattr(clock, "after", lambda previous: clock._next_microsecond(max(previous, frozen)))
    writers, appends = 8, 15
    barrier = threading.Barrier(writers)
    failures: list[BaseException] = []

    def writer(w: int) -> None:
        barrier.wait()
        try:
            for a in range(appends):
                batch = [{"role": "user", "content": f"w{w}-a{a}-m{m}", "name": None} for m in range(1 + a % 3)]
                history.append_messages(table, "alice", session_id, batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    stored = list(table.messages("alice", session_id))
    texts = [message["content"] for _, message in stored]
    expected = {f"w{w}-a{a}-m{m}" for w in range(writers) for a in range(appends) for m in range(1 + a % 3)}
    assert len(texts) == len(expected) and set(texts) == expected  # each exactly once
    by_writer = defaultdict(list)
    for text in texts:
        by_writer[text.split("-")[0]].append(text)
    for w in range(writers):  # each writer's order
        assert by_writer[f"w{w}"] == [f"w{w}-a{a}-m{m}" for a in range(appends) for m in range(1 + a % 3)]
    appends_seen = [text.rsplit("-", 1)[0] for text in texts]  # appends contiguous
    runs = [key for n, key in enumerate(appends_seen) if n == 0 or appends_seen[n - 1] != key]
    assert len(runs) == writers * appends
    # The order read is the order of created_at, then position; and writers really collided.
    created = [message["created_at"] for _, message in stored]
    assert created == sorted(created)
    assert lost_races, "no append ever lost a race to another, so this run proved nothing"
    # The API answers the same order, page after page.
    assert [
        m.content for m in history.get(table, "alice", session_id, history.HistoryQuery(limit=1000))["items"]
    ] == texts


def test_an_append_from_a_lagging_clock_still_lands_after_the_newest(api, session_id, monkeypatch):
    """A writer's next append may reach another Lambda whose clock is an hour behind: it must
    still land after the writer's last message, not an hour before it."""
    first = add(api, session_id, "first", "second")

    class LaggingDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) - timedelta(hours=1)

    monkeypatch.setattr(clock, "datetime", LaggingDatetime)
    monkeypatch.setattr(clock, "_last", "")
    assert clock.now() < first[-1]["created_at"]  # the clock really lags
    later = add(api, session_id, "third")
    assert later[0]["created_at"] > first[-1]["created_at"]
    assert contents(api, session_id) == ["first", "second", "third"]


def test_a_multi_message_append_is_all_or_nothing(api, table, session_id, monkeypatch):
    add(api, session_id, "kept")
    real_transact = table.client.transact_write_items

    sent = []

    def fail_on_the_last_put(**kwargs):
        sent.append(kwargs["TransactItems"])
        raise table.client.exceptions.TransactionCanceledException(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": [{"Code": "None"}] * 9 + [{"Code": "ConditionalCheckFailed"}],
            },
            "TransactWriteItems",
        )

    monkeypatch.setattr(table.client, "transact_write_items", fail_on_the_last_put)
    with pytest.raises(StoreError, match="position was taken"):
        history.append_messages(table, "alice", session_id, [{"role": "user", "content": c} for c in ("a", "b", "c")])
    monkeypatch.setattr(table.client, "transact_write_items", real_transact)
    # One transaction: the session's activity (its update, 3 update-order entries moved), 3 puts.
    assert [len(items) for items in sent] == [1 + 6 + 3]
    assert contents(api, session_id) == ["kept"]


# --- activity: an append or a chat moves the session --------------------------------------------


@pytest.mark.parametrize("how", ["append", "chat"])
def test_activity_moves_the_session_to_the_front_of_its_users_sessions(api, table, agent_id, user_id, how):
    """docs/api.md: newest activity first with `?user_id=...&sort_by=updated_at`."""
    from chalicelib.tools import consistency

    older = api.post("/sessions", {"agent_id": agent_id, "user_id": user_id}).json["id"]
    newer = api.post("/sessions", {"agent_id": agent_id, "user_id": user_id}).json["id"]
    before = api.get(f"/sessions/{older}")
    lists = [
        f"/sessions?user_id={user_id}&sort_by=updated_at",
        f"/sessions?agent_id={agent_id}&sort_by=updated_at",
        "/sessions?sort_by=updated_at",
    ]
    for path in lists:
        assert [s["id"] for s in api.get(path).json["items"]] == [newer, older]
    if how == "append":
        add(api, older, "hello")
    else:
        with model_provider(FakeModel(reply="echo")):
            assert (
                api.post(f"/sessions/{older}/chat", {"messages": [{"role": "user", "content": "hi"}]}).status_code
                == 200
            )
    after = api.get(f"/sessions/{older}")
    assert after.json["updated_at"] > before.json["updated_at"]
    assert after.json["created_at"] == before.json["created_at"]
    for path in lists:
        assert [s["id"] for s in api.get(path).json["items"]] == [older, newer], path
        assert [s["id"] for s in api.get(path + "&order=asc").json["items"]] == [newer, older], path
    report = consistency.check(table, "alice")
    assert report["missing"] == [] and report["orphaned"] == [], report
    # Activity is not an edit: the ETag stays, and an If-Match read before the chat still holds.
    assert after.headers["ETag"] == before.headers["ETag"]
    assert (
        api.patch(
            f"/sessions/{older}", {"metadata": {"edited": True}}, headers={"If-Match": before.headers["ETag"]}
        ).status_code
        == 200
    )


@pytest.mark.parametrize("racer", ["patch", "delete"])
def test_an_append_between_the_read_and_the_write_of_an_update_leaves_no_stale_entry(
    api, table, session_id, monkeypatch, racer
):
    """The update (or delete) read the session; an append moves its updated_at and its
    update-order entries before the update's transaction. The update must not write the record
    back with the entries it read (they moved), nor leave the append's behind: it reads again."""
    from chalicelib.tools import consistency

    method = table.replace if racer == "patch" else table.delete
    raced = []

    def append_first(*args, **kwargs):
        if not raced:
            raced.append(1)
            history.append_messages(table, "alice", session_id, [{"role": "user", "content": "meanwhile"}])
        return method(*args, **kwargs)

    monkeypatch.setattr(table, "replace" if racer == "patch" else "delete", append_first)
    if racer == "patch":
        assert api.patch(f"/sessions/{session_id}", {"metadata": {"after": "append"}}).status_code == 200
        assert contents(api, session_id) == ["meanwhile"]
    else:
        assert api.delete(f"/sessions/{session_id}").status_code == 202
    report = consistency.check(table, "alice")
    assert report["missing"] == [] and report["orphaned"] == [] and report["orphaned_messages"] == [], report
    listed = [s["id"] for s in api.get("/sessions?sort_by=updated_at").json["items"]]
    assert listed == ([session_id] if racer == "patch" else [])


def test_appending_to_a_deleted_session_stores_nothing(api, table, session_id):
    assert api.delete(f"/sessions/{session_id}").status_code == 202
    with pytest.raises(NotFound):
        history.append_messages(table, "alice", session_id, [{"role": "user", "content": "late"}])
    assert list(table.messages("alice", session_id)) == []


# --- reading -------------------------------------------------------------------------------------


def walk(api, session_id, query):
    pages, url = [], f"/sessions/{session_id}/history?{query}"
    while True:
        answer = api.get(url)
        assert answer.status_code == 200, answer.json
        pages.append([m["content"] for m in answer.json["items"]])
        if answer.json["next_cursor"] is None:
            return pages
        url = f"/sessions/{session_id}/history?{query}&cursor={answer.json['next_cursor']}"


def test_cursor_walks_in_both_orders_and_desc_gives_the_last_turns(api, session_id):
    for start in range(0, 23, 5):
        add(api, session_id, *[f"m{n}" for n in range(start, min(start + 5, 23))])
    everything = [f"m{n}" for n in range(23)]
    for limit in (1, 4, 10, 23, 50):
        pages = walk(api, session_id, f"limit={limit}")
        assert sum(pages, []) == everything
        assert all(len(page) == limit for page in pages[:-1]) and pages[-1]
        back = walk(api, session_id, f"limit={limit}&order=desc")
        assert sum(back, []) == everything[::-1]
    assert contents(api, session_id, "?limit=3&order=desc") == ["m22", "m21", "m20"]
    assert contents(api, session_id, "?limit=3&offset=2&order=desc") == ["m20", "m19", "m18"]
    # The last page says there is no more, even when it is exactly full.
    assert api.get(f"/sessions/{session_id}/history?limit=23").json["next_cursor"] is None


def test_a_cursor_only_continues_its_own_query(api, session_id, agent_id):
    add(api, session_id, "a", "b", "c")
    cursor = api.get(f"/sessions/{session_id}/history?limit=1").json["next_cursor"]
    other = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    add(api, other, "x", "y")
    for url, _who in [
        (f"/sessions/{session_id}/history?limit=1&order=desc&cursor={cursor}", "alice"),  # other order
        (f"/sessions/{other}/history?limit=1&cursor={cursor}", "alice"),  # other session
        (f"/sessions/{session_id}/history?limit=1&cursor={cursor[:-2]}xx", "alice"),  # forged
        (f"/sessions/{session_id}/history?limit=1&cursor={cursor}&offset=1", "alice"),  # with offset
    ]:
        answer = api.get(url)
        assert answer.status_code == 400, (url, answer.json)
        assert answer.json["error"]["code"] == "bad_request"
    # Another developer's request never reaches the session at all.
    assert api.as_("bob").get(f"/sessions/{session_id}/history?cursor={cursor}").status_code in (400, 404)
    assert contents(api, session_id, f"?limit=5&cursor={cursor}") == ["b", "c"]


def test_a_new_message_after_the_last_page_is_found_by_its_cursor(api, session_id):
    """A cursor marks a position, not a count: appends made meanwhile are read next, none twice."""
    add(api, session_id, "a", "b")
    page = api.get(f"/sessions/{session_id}/history?limit=2").json
    assert page["next_cursor"] is None
    first = api.get(f"/sessions/{session_id}/history?limit=1").json
    add(api, session_id, "c")
    assert contents(api, session_id, f"?limit=10&cursor={first['next_cursor']}") == ["b", "c"]


# --- limits --------------------------------------------------------------------------------------


def test_content_limits_and_roles_are_422_and_store_nothing(api, session_id):
    add(api, session_id, "before")
    big = "x" * (64 * 1024 + 1)
    for message, field in [
        ({"role": "user", "content": big}, "messages.0.content"),
        ({"role": "user", "content": [{"type": "text", "text": big}]}, "messages.0.content"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}, "messages.0.content"),
        ({"role": "auto", "content": "x"}, "messages.0.role"),
        ({"role": "function_call", "content": "x"}, "messages.0.role"),
        ({"role": "user", "content": "x", "name": "n" * 257}, "messages.0.name"),
    ]:
        answer = api.post(f"/sessions/{session_id}/history", {"messages": [message]})
        assert answer.status_code == 422, (field, answer.json)
        assert any(d["field"].startswith(field) for d in answer.json["error"]["details"]), answer.json
    assert contents(api, session_id) == ["before"]
    exactly = "é" * (32 * 1024)  # 64 KiB in UTF-8, the limit itself
    parts = [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]
    add(api, session_id, exactly)
    api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": parts}]})
    stored = api.get(f"/sessions/{session_id}/history").json["items"]
    assert stored[1]["content"] == exactly and stored[2]["content"] == parts


# --- clearing ------------------------------------------------------------------------------------


def test_clearing_two_thousand_messages_keeps_the_session_and_clears_the_summary(api, table, session_id):
    for start in range(0, 2000, 50):
        history.append_messages(
            table, "alice", session_id, [{"role": "user", "content": f"m{n}"} for n in range(start, start + 50)]
        )
    session = table.get("alice", "session", session_id)
    assert table.write_summary("alice", session_id, session["version"], "they talked", "msg#zzz")
    assert api.get(f"/sessions/{session_id}").json["summary"] == "they talked"
    assert api.delete(f"/sessions/{session_id}/history").status_code == 202
    assert list(table.messages("alice", session_id)) == []
    after = api.get(f"/sessions/{session_id}").json
    assert after["summary"] is None and after["situation"] == "hi"
    assert "summary_until" not in after
    add(api, session_id, "fresh")
    assert contents(api, session_id) == ["fresh"]


# --- append-after: an append that says which message it follows (issue 14) -------------------------


def test_an_append_after_the_last_message_is_stored_and_after_any_other_is_a_409(api, session_id):
    first = add(api, session_id, "one", "two")
    answer = api.post(
        f"/sessions/{session_id}/history",
        {"messages": [{"role": "user", "content": "three"}], "after": first[-1]["id"]},
    )
    assert answer.status_code == 201, answer.json
    last = answer.json["items"][-1]["id"]
    for stale in (first[0]["id"], first[-1]["id"], None):  # a middle message, the old last, "empty"
        moved = api.post(
            f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}], "after": stale}
        )
        assert moved.status_code == 409 and moved.json["error"]["code"] == "history_moved", moved.json
        assert last in moved.json["error"]["message"] and moved.json["error"]["details"][0]["last_message_id"] == last
    assert contents(api, session_id) == ["one", "two", "three"]  # nothing stored by the refused ones
    # in either case, as every id
    upper = api.post(
        f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "four"}], "after": last.upper()}
    )
    assert upper.status_code == 201, upper.json


def test_after_null_appends_only_to_an_empty_history_and_a_cleared_one_is_empty(api, session_id):
    def to_empty(text):
        return api.post(
            f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": text}], "after": None}
        )

    assert to_empty("first").status_code == 201
    refused = to_empty("second")
    assert refused.status_code == 409 and refused.json["error"]["details"][0]["last_message_id"] is not None
    assert api.delete(f"/sessions/{session_id}/history").status_code == 202
    assert to_empty("again").status_code == 201
    assert contents(api, session_id) == ["again"]


def test_after_must_be_a_message_id(api, session_id):
    answer = api.post(
        f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}], "after": "nope"}
    )
    assert answer.status_code == 422 and answer.json["error"]["details"][0]["field"] == "after"
    assert contents(api, session_id) == []


def test_two_writers_answering_the_same_turn_never_interleave(calls_atomic, session_id, monkeypatch):
    """Two agents answer the same last message at once, each with `after`: exactly one answer is
    stored, the other is a 409 naming it, on moto and on DynamoDB Local, however they race."""
    table = calls_atomic
    (turn,) = history.append_messages(table, "alice", session_id, [{"role": "user", "content": "q", "name": None}])
    for attempt in range(5):
        barrier, results = threading.Barrier(2), []

        def answer(n: int, after: str) -> None:
            barrier.wait()
            try:
                body = {"messages": [{"role": "assistant", "content": f"answer {attempt}.{n}"}], "after": after}
                results.append(
                    history.append(table, "alice", session_id, models.HistoryAppend.model_validate(body))["items"][
                        -1
                    ].id
                )
            except Exception as exc:  # noqa: BLE001 - counted below
                results.append(exc)

        threads = [threading.Thread(target=answer, args=(n, turn["id"])) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = [r for r in results if isinstance(r, str)]
        refused = [r for r in results if not isinstance(r, str)]
        assert len(stored) == 1 and len(refused) == 1, results
        assert refused[0].code == "history_moved" and refused[0].details[0]["last_message_id"] == stored[0]
        turn = {"id": stored[0]}
    items = history.get(table, "alice", session_id, history.HistoryQuery(limit=100))["items"]
    assert [m.content.split(".")[0] for m in items] == ["q", *(f"answer {a}" for a in range(5))]


def test_a_chat_after_a_moved_history_is_a_409_before_the_model_is_called(api, session_id, model):
    (last,) = add(api, session_id, "hello")
    add(api, session_id, "meanwhile")
    answer = api.post(
        f"/sessions/{session_id}/chat", {"messages": [{"role": "user", "content": "hi"}], "after": last["id"]}
    )
    assert answer.status_code == 409 and answer.json["error"]["code"] == "history_moved"
    assert model.calls == [] and contents(api, session_id) == ["hello", "meanwhile"]
    current = api.get(f"/sessions/{session_id}/history?order=desc&limit=1").json["items"][0]["id"]
    chat = api.post(f"/sessions/{session_id}/chat", {"messages": [{"role": "user", "content": "hi"}], "after": current})
    assert chat.status_code == 200 and contents(api, session_id) == ["hello", "meanwhile", "hi", "reply"]


def test_after_works_on_a_session_written_before_the_record_kept_its_last_message(api, table, session_id):
    """Sessions stored before last_message_id was kept: the newest message is asked of the history."""
    (last,) = add(api, session_id, "old")
    table.client.update_item(
        TableName=table.table,
        Key={"pk": {"S": f"dev#alice#session#{session_id}"}, "sk": {"S": "#record"}},
        UpdateExpression="REMOVE last_message_id",
    )
    stale = api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}], "after": None})
    assert stale.status_code == 409 and stale.json["error"]["details"][0]["last_message_id"] == last["id"]
    fresh = api.post(
        f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "new"}], "after": last["id"]}
    )
    assert fresh.status_code == 201 and contents(api, session_id) == ["old", "new"]


# --- one message: read and remove by id (issue 14) ----------------------------------------------------


def test_one_message_is_read_by_its_id_in_either_case_and_only_in_its_session(api, session_id, agent_id):
    stored = add(api, session_id, "one", "two", "three")
    for message in stored:
        got = api.get(f"/sessions/{session_id}/history/{message['id'].upper()}")
        assert got.status_code == 200 and got.json == message
    other = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    assert api.get(f"/sessions/{other}/history/{stored[0]['id']}").status_code == 404
    missing = api.get(f"/sessions/{session_id}/history/{clock.new_id()}")
    assert missing.status_code == 404 and "message" in missing.json["error"]["message"]
    assert api.get(f"/sessions/{session_id}/history/not-an-id").status_code == 404
    assert api.get(f"/sessions/{clock.new_id()}/history/{stored[0]['id']}").status_code == 404


def test_removing_one_message_keeps_the_others_order_and_ids(api, session_id):
    stored = add(api, session_id, "one", "two", "three", "four")
    before = api.get(f"/sessions/{session_id}").json["updated_at"]
    removed = api.delete(f"/sessions/{session_id}/history/{stored[1]['id']}")
    assert removed.status_code == 202 and removed.json["id"] == stored[1]["id"]
    assert api.get(f"/sessions/{session_id}/history").json["items"] == [stored[0], stored[2], stored[3]]
    assert api.get(f"/sessions/{session_id}/history/{stored[1]['id']}").status_code == 404
    assert api.delete(f"/sessions/{session_id}/history/{stored[1]['id']}").status_code == 404
    assert api.get(f"/sessions/{session_id}").json["updated_at"] > before  # a change of the history


def test_removing_the_last_message_makes_the_one_before_it_last(api, session_id):
    first, last = add(api, session_id, "one", "two")
    assert api.delete(f"/sessions/{session_id}/history/{last['id']}").status_code == 202
    moved = api.post(
        f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}], "after": last["id"]}
    )
    assert moved.status_code == 409 and moved.json["error"]["details"][0]["last_message_id"] == first["id"]
    assert api.delete(f"/sessions/{session_id}/history/{first['id']}").status_code == 202
    fresh = api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "y"}], "after": None})
    assert fresh.status_code == 201 and contents(api, session_id) == ["y"]


def test_removing_a_message_the_summary_covered_clears_the_summary(api, table, session_id):
    """The summary stays honest: one that covered a removed message is cleared (the next adaptive
    context rebuilds it from what is left); one that did not, stays."""
    first, second, third = add(api, session_id, "one", "two", "three")
    session = table.get("alice", "session", session_id)
    position = {m["id"]: p for p, m in table.messages("alice", session_id)}
    assert table.write_summary("alice", session_id, int(session["version"]), "one and two", position[second["id"]])
    tag = api.get(f"/sessions/{session_id}").headers["ETag"]
    assert api.delete(f"/sessions/{session_id}/history/{third['id']}").status_code == 202  # after the summary
    kept = api.get(f"/sessions/{session_id}")
    assert kept.json["summary"] == "one and two" and kept.headers["ETag"] == tag
    assert api.delete(f"/sessions/{session_id}/history/{first['id']}").status_code == 202  # inside it
    cleared = api.get(f"/sessions/{session_id}")
    assert cleared.json["summary"] is None and cleared.headers["ETag"] != tag
    assert table.get("alice", "session", session_id).get("summary_until") is None


def test_a_message_stored_before_ids_carried_positions_is_found_by_its_id(api, table, session_id):
    """Sessions and messages from before: a random id, found with a Query of the history."""
    add(api, session_id, "new style")
    pk = {"S": f"dev#alice#session#{session_id}"}
    table.client.update_item(
        TableName=table.table, Key={"pk": pk, "sk": {"S": "#record"}}, UpdateExpression="REMOVE positional_ids"
    )
    old_id = clock.new_id()
    table.client.put_item(
        TableName=table.table,
        Item={
            "pk": pk,
            "sk": {"S": f"msg#2020-01-01T00:00:00.000000Z#{old_id}#000"},
            "id": {"S": old_id},
            "role": {"S": "user"},
            "content": {"S": "old style"},
            "created_at": {"S": "2020-01-01T00:00:00.000000Z"},
        },
    )
    assert api.get(f"/sessions/{session_id}/history/{old_id}").json["content"] == "old style"
    assert api.delete(f"/sessions/{session_id}/history/{old_id}").status_code == 202
    assert contents(api, session_id) == ["new style"]


def test_a_remove_racing_appends_loses_nothing_and_leaves_the_true_last_message(calls_atomic, session_id):
    table = calls_atomic
    stored = history.append_messages(
        table, "alice", session_id, [{"role": "user", "content": f"m{n}", "name": None} for n in range(6)]
    )
    barrier, failures = threading.Barrier(3), []

    def run(job) -> None:
        barrier.wait()
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    jobs = [
        lambda: history.delete_message(table, "alice", session_id, stored[-1]["id"]),
        lambda: history.delete_message(table, "alice", session_id, stored[2]["id"]),
        lambda: history.append_messages(
            table, "alice", session_id, [{"role": "user", "content": "late", "name": None}]
        ),
    ]
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    items = history.get(table, "alice", session_id, history.HistoryQuery(limit=100))["items"]
    assert [m.content for m in items] == ["m0", "m1", "m3", "m4", "late"]
    assert table.get("alice", "session", session_id)["last_message_id"] == items[-1].id


# --- rewind: DELETE /sessions/{id}/history?after=<message id> (issue 14) ------------------------------


def test_a_rewind_keeps_the_history_up_to_a_message_and_that_message_becomes_the_last(api, table, session_id):
    from chalicelib.tools import consistency

    stored = add(api, session_id, *(f"m{n}" for n in range(20)))
    answer = api.delete(f"/sessions/{session_id}/history?after={stored[9]['id'].upper()}")
    assert answer.status_code == 202, answer.json
    assert api.get(f"/sessions/{session_id}/history").json["items"] == stored[:10]
    moved = api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "x"}], "after": None})
    assert moved.json["error"]["details"][0]["last_message_id"] == stored[9]["id"]
    again = api.post(
        f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": "redo"}], "after": stored[9]["id"]}
    )
    assert again.status_code == 201 and contents(api, session_id)[-2:] == ["m9", "redo"]
    assert (
        api.delete(f"/sessions/{session_id}/history?after={again.json['items'][0]['id']}").status_code == 202
    )  # the last: nothing to do
    report = consistency.check(table, "alice")
    assert (report["missing"], report["orphaned"], report["orphaned_messages"]) == ([], [], [])
    assert [k for k in table_keys(table) if k[0].endswith("#purge")] == []


def test_a_rewind_clears_a_summary_that_covered_what_it_removed(api, table, session_id):
    stored = add(api, session_id, *(f"m{n}" for n in range(6)))
    position = {m["id"]: p for p, m in table.messages("alice", session_id)}
    session = table.get("alice", "session", session_id)
    assert table.write_summary("alice", session_id, int(session["version"]), "m0..m1", position[stored[1]["id"]])
    assert api.delete(f"/sessions/{session_id}/history?after={stored[3]['id']}").status_code == 202
    assert api.get(f"/sessions/{session_id}").json["summary"] == "m0..m1"  # it covered nothing removed
    session = table.get("alice", "session", session_id)
    assert table.write_summary("alice", session_id, int(session["version"]), "m0..m3", position[stored[3]["id"]])
    assert api.delete(f"/sessions/{session_id}/history?after={stored[2]['id']}").status_code == 202
    assert api.get(f"/sessions/{session_id}").json["summary"] is None and contents(api, session_id) == [
        "m0",
        "m1",
        "m2",
    ]


def test_an_interrupted_rewind_keeps_what_was_appended_meanwhile_and_a_retry_finishes_it(
    api, table, session_id, monkeypatch
):
    from chalicelib.rules import deletes

    for start in range(0, 450, 50):
        add(api, session_id, *(f"m{n}" for n in range(start, start + 50)))
    keep = api.get(f"/sessions/{session_id}/history?limit=5").json["items"]
    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", -1.0)  # stops after its first page
    stopped = api.delete(f"/sessions/{session_id}/history?after={keep[-1]['id']}")
    assert stopped.status_code == 503 and stopped.json["error"]["code"] == "deletion_in_progress"
    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", 20.0)
    meanwhile = add(api, session_id, "meanwhile")  # after the rewind began: it must stay
    assert meanwhile[0]["content"] == "meanwhile"
    assert api.delete(f"/sessions/{session_id}/history?after={keep[-1]['id']}").status_code == 202
    assert contents(api, session_id) == ["m0", "m1", "m2", "m3", "m4", "meanwhile"]


def test_the_operators_sweep_finishes_a_rewind_nobody_retried(api, table, session_id, monkeypatch):
    from chalicelib.rules import deletes

    for start in range(0, 450, 50):
        add(api, session_id, *(f"m{n}" for n in range(start, start + 50)))
    first = api.get(f"/sessions/{session_id}/history?limit=1").json["items"][0]
    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", -1.0)
    assert api.delete(f"/sessions/{session_id}/history?after={first['id']}").status_code == 503
    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", 20.0)
    assert deletes.finish_pending_deletes(table, "alice") == 1
    assert contents(api, session_id) == ["m0"] and deletes.finish_pending_deletes(table, "alice") == 0


def test_a_rewind_names_a_message_of_its_own_session(api, session_id, agent_id):
    stored = add(api, session_id, "a", "b")
    other = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    assert api.delete(f"/sessions/{other}/history?after={stored[0]['id']}").status_code == 404
    assert api.delete(f"/sessions/{session_id}/history?after={clock.new_id()}").status_code == 404
    bad = api.delete(f"/sessions/{session_id}/history?after=nope")
    assert bad.status_code == 400 and "after" in bad.json["error"]["message"]
    assert api.delete(f"/sessions/{session_id}/history?before={stored[0]['id']}").status_code == 400
    assert contents(api, session_id) == ["a", "b"]


# --- fork: POST /sessions/{id}/fork (issue 14) --------------------------------------------------------


def test_fork_at_5_of_20_then_rewind_the_original_after_10(api, table, session_id):
    """The issue's flow: the fork has 5 messages, the original 10, and both read back exactly."""
    from chalicelib.tools import consistency

    stored = add(api, session_id, *(f"m{n}" for n in range(20)))
    forked = api.post(f"/sessions/{session_id}/fork", {"up_to": stored[4]["id"]})
    assert forked.status_code == 201, forked.json
    fork_id = forked.json["id"]
    assert api.delete(f"/sessions/{session_id}/history?after={stored[9]['id']}").status_code == 202
    assert api.get(f"/sessions/{session_id}/history").json["items"] == stored[:10]
    copied = api.get(f"/sessions/{fork_id}/history").json["items"]
    assert [(m["role"], m["content"], m["created_at"]) for m in copied] == [
        (m["role"], m["content"], m["created_at"]) for m in stored[:5]
    ]
    assert not {m["id"] for m in copied} & {m["id"] for m in stored}  # new ids
    for message in copied:  # each found by its own id, in the fork only
        assert api.get(f"/sessions/{fork_id}/history/{message['id']}").json == message
        assert api.get(f"/sessions/{session_id}/history/{message['id']}").status_code == 404
    appended = api.post(
        f"/sessions/{fork_id}/history",
        {"messages": [{"role": "user", "content": "other path"}], "after": copied[-1]["id"]},
    )
    assert appended.status_code == 201, appended.json
    report = consistency.check(table, "alice")
    assert (report["missing"], report["orphaned"], report["orphaned_messages"]) == ([], [], [])


def test_a_fork_takes_the_originals_settings_merges_metadata_and_leaves_the_original_unchanged(
    api, table, agent_id, user_id
):
    session_id = api.post(
        "/sessions",
        {
            "agent_id": agent_id,
            "user_id": user_id,
            "situation": "coach",
            "token_budget": 900,
            "context_overflow": "truncate",
            "metadata": {"keep": 1, "drop": 2},
        },
    ).json["id"]
    add(api, session_id, "a", "b")
    before = api.get(f"/sessions/{session_id}")
    forked = api.post(f"/sessions/{session_id}/fork", {"metadata": {"drop": None, "new": "x"}})
    fork = api.get(f"/sessions/{forked.json['id']}").json
    assert {k: fork[k] for k in ("agent_id", "user_id", "situation", "token_budget", "context_overflow")} == {
        "agent_id": agent_id,
        "user_id": user_id,
        "situation": "coach",
        "token_budget": 900,
        "context_overflow": "truncate",
    }
    assert fork["metadata"] == {"keep": 1, "new": "x"}
    assert contents(api, forked.json["id"]) == ["a", "b"]  # all of it without up_to
    after = api.get(f"/sessions/{session_id}")
    assert (after.json, after.headers["ETag"]) == (before.json, before.headers["ETag"])
    assert [s["id"] for s in api.get(f"/sessions?user_id={user_id}").json["items"]] == [forked.json["id"], session_id]
    assert api.get("/sessions?metadata_filter=" + json.dumps({"new": "x"})).json["items"][0]["id"] == forked.json["id"]


def test_a_fork_keeps_the_summary_only_when_it_covers_no_message_left_out(api, table, session_id):
    stored = add(api, session_id, *(f"m{n}" for n in range(6)))
    position = {m["id"]: p for p, m in table.messages("alice", session_id)}
    session = table.get("alice", "session", session_id)
    assert table.write_summary("alice", session_id, int(session["version"]), "m0..m2", position[stored[2]["id"]])
    kept = api.post(f"/sessions/{session_id}/fork", {"up_to": stored[3]["id"]}).json["id"]
    record = table.get("alice", "session", kept)
    assert record["summary"] == "m0..m2"
    read = dict(table.visible_messages("alice", record))
    assert read[record["summary_until"]]["content"] == "m2"  # the same message, at the same position
    dropped = api.post(f"/sessions/{session_id}/fork", {"up_to": stored[1]["id"]}).json["id"]
    assert api.get(f"/sessions/{dropped}").json["summary"] is None


def test_a_copied_fork_that_does_not_finish_is_never_visible_and_the_sweep_removes_it(
    api, table, session_id, monkeypatch
):
    """A session from before message ids carried positions is forked by copying (the first version
    of forks), under the request's budget."""
    from chalicelib.rules import deletes
    from chalicelib.tools import consistency

    for start in range(0, 450, 50):
        add(api, session_id, *(f"m{n}" for n in range(start, start + 50)))
    table.client.update_item(
        TableName=table.table,
        Key={"pk": {"S": f"dev#alice#session#{session_id}"}, "sk": {"S": "#record"}},
        UpdateExpression="REMOVE positional_ids",
    )
    sessions_before = [s["id"] for s in api.get("/sessions").json["items"]]
    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", -1.0)  # out of time after the first round
    stopped = api.post(f"/sessions/{session_id}/fork", {})
    assert stopped.status_code == 503 and stopped.headers["Retry-After"]
    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", 20.0)
    assert [s["id"] for s in api.get("/sessions").json["items"]] == sessions_before
    partial = {key[0] for key in table_keys(table) if key[1].startswith("msg#") and session_id not in key[0]}
    assert len(partial) == 1  # copied messages of a session that does not exist
    (fork_id,) = (pk.rsplit("#", 1)[1] for pk in partial)
    assert api.get(f"/sessions/{fork_id}").status_code == 404
    report = consistency.check(table, "alice")
    assert (report["missing"], report["orphaned"], report["orphaned_messages"]) == ([], [], [])
    assert deletes.finish_pending_deletes(table, "alice") == 1
    assert not [key for key in table_keys(table) if fork_id in key[0] or fork_id in key[1]]


def test_a_fork_is_refused_for_what_it_cannot_name_and_replayed_by_its_key(api, session_id, agent_id):
    stored = add(api, session_id, "a")
    other = api.post("/sessions", {"agent_id": agent_id}).json["id"]
    assert api.post(f"/sessions/{other}/fork", {"up_to": stored[0]["id"]}).status_code == 404
    assert api.post(f"/sessions/{clock.new_id()}/fork", {}).status_code == 404
    assert api.post(f"/sessions/{session_id}/fork", {"up_to": "x"}).status_code == 422
    assert api.post(f"/sessions/{session_id}/fork", {"metadata": {"k": {"$bad": 1}}, "extra": 1}).status_code == 422
    first = api.post(f"/sessions/{session_id}/fork", {}, headers={"Idempotency-Key": "f1"})
    again = api.post(f"/sessions/{session_id}/fork", {}, headers={"Idempotency-Key": "f1"})
    assert again.json == first.json and again.headers.get("Idempotent-Replayed") == "true"
    assert len(api.get(f"/sessions?agent_id={agent_id}").json["items"]) == 3  # the session, other, one fork


# --- a safe pop: DELETE of the last message only while it is the last ---------------------------


def _append(api, session_id, *texts):
    answer = api.post(f"/sessions/{session_id}/history", {"messages": [{"role": "user", "content": t} for t in texts]})
    assert answer.status_code == 201, answer.json
    return [m["id"] for m in answer.json["items"]]


def _contents(api, session_id):
    return [m["content"] for m in api.get(f"/sessions/{session_id}/history").json["items"]]


@pytest.mark.real_engine
def test_only_if_last_deletes_the_last_message_and_refuses_any_other(api, session_id):
    first, last = _append(api, session_id, "a", "b")
    refused = api.delete(f"/sessions/{session_id}/history/{first}?only_if_last=true")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "history_moved"
    assert refused.json["error"]["details"][0]["last_message_id"] == last
    assert _contents(api, session_id) == ["a", "b"]
    assert api.delete(f"/sessions/{session_id}/history/{last}?only_if_last=true").status_code == 202
    assert _contents(api, session_id) == ["a"]
    assert api.delete(f"/sessions/{session_id}/history/{first}?only_if_last=true").status_code == 202
    assert _contents(api, session_id) == []
    bad = api.delete(f"/sessions/{session_id}/history/{first}?only_if_last=yes")
    assert bad.status_code == 400 and "only_if_last must be true or false" in bad.json["error"]["message"]


@pytest.mark.real_engine
def test_only_if_last_loses_to_an_append_that_commits_between_its_read_and_its_write(
    api, table, session_id, monkeypatch
):
    """The interleaving made certain: another client's append lands after the delete read the
    session (its last message then the one named) and before the delete's transaction. The
    transaction's condition on the session as read fails, the delete reads again and refuses:
    the popped message was not the last any more. Without the condition it would remove it."""
    (last,) = _append(api, session_id, "a")
    real = table.remove_messages
    raced = []

    def append_first(*args, **kwargs):
        if not raced:
            raced.append(1)
            history.append_messages(table, "alice", session_id, [{"role": "user", "content": "late"}])
        return real(*args, **kwargs)

    monkeypatch.setattr(table, "remove_messages", append_first)
    answer = api.delete(f"/sessions/{session_id}/history/{last}?only_if_last=true")
    assert answer.status_code == 409 and answer.json["error"]["code"] == "history_moved"
    assert _contents(api, session_id) == ["a", "late"]
