"""Agents, users, sessions and history over HTTP: create/get/update/delete, lists, filters,
cascades and the wire format (/work/shared/reference/julep-v0.3-wire.md).

Every rule is checked on the answer and again on what a later GET or list (or, for cascades,
the table itself) shows, so a rule that is answered but not kept still fails.
"""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest

from conftest import scan_all as all_items

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
DEFAULT_MODEL = "julep-ai/samantha-1-turbo"
KINDS = ["agents", "users", "sessions"]

# A PUT body valid on each kind (its required fields), and a harmless PATCH body.
PUT_REQUIRED = {
    "agents": {"name": "Put name", "about": "put about"},
    "users": {"name": "Put name", "about": "put about"},
    "sessions": {"situation": "put situation"},
}
PATCH_BODY = {
    "agents": {"about": "patched"},
    "users": {"about": "patched"},
    "sessions": {"situation": "patched"},
}
BODY = {"patch": PATCH_BODY, "put": PUT_REQUIRED}


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def make(api):
    """make(kind, **fields) -> id. Sessions share one parent agent unless agent_id is given."""
    parent: dict[str, str] = {}

    def _make(kind: str, **fields: Any) -> str:
        if kind == "agents":
            body = {"name": "Agent", "about": "an agent", **fields}
        elif kind == "users":
            body = {"name": "User", "about": "a user", **fields}
        else:
            if "agent_id" not in fields:
                if "agent" not in parent:
                    parent["agent"] = created(api.post("/agents", {"name": "Parent"}))
                fields = {"agent_id": parent["agent"], **fields}
            body = {"situation": "a situation", **fields}
        return created(api.post(f"/{kind}", body))

    return _make


def created(answer) -> str:
    assert answer.status_code == 201, answer.json
    return answer.json["id"]


def listed(api, path: str) -> list[str]:
    answer = api.get(path)
    assert answer.status_code == 200, (path, answer.json)
    assert set(answer.json) == {"items", "next_cursor"}
    return [item["id"] for item in answer.json["items"]]


def filtered(api, kind: str, wanted: Any, extra: str = "") -> list[str]:
    return listed(api, f"/{kind}?metadata_filter={quote(json.dumps(wanted))}{extra}")


def fetch(api, kind: str, record_id: str) -> dict[str, Any]:
    answer = api.get(f"/{kind}/{record_id}")
    assert answer.status_code == 200, answer.json
    return answer.json


def error_fields(answer) -> set[str]:
    return {detail["field"] for detail in answer.json["error"]["details"]}


def append(api, session_id: str, *contents: str, role: str = "user") -> list[dict[str, Any]]:
    answer = api.post(f"/sessions/{session_id}/history", {"messages": [{"role": role, "content": c} for c in contents]})
    assert answer.status_code == 201, answer.json
    return answer.json["items"]


def history(api, session_id: str, query: str = "") -> list[dict[str, Any]]:
    answer = api.get(f"/sessions/{session_id}/history{query}")
    assert answer.status_code == 200, answer.json
    assert set(answer.json) == {"items", "next_cursor"}
    return answer.json["items"]


def items_mentioning(table, *ids: str) -> list[dict[str, Any]]:
    """Raw items with a string attribute (key or value) mentioning one of the ids: records, links,
    list entries, history messages, purge markers, whatever the layout."""
    return [item for item in all_items(table) if any(i in " ".join(v.get("S", "") for v in item.values()) for i in ids)]


def _key_set(table) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in all_items(table))


def assert_gone(api, kind: str, record_id: str) -> None:
    assert api.get(f"/{kind}/{record_id}").status_code == 404
    assert record_id not in listed(api, f"/{kind}?limit=1000")
    if kind == "sessions":
        assert api.get(f"/sessions/{record_id}/history").status_code == 404


def assert_422(answer, *fields: str) -> None:
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["code"] == "validation_error"
    named = error_fields(answer)
    for field in fields:  # a union's alternatives are named field.alternative
        assert any(n == field or n.startswith(field + ".") for n in named), (field, answer.json)


# --- 1. create and get --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_create_answers_201_id_created_at_jobs(api, kind):
    agent = created(api.post("/agents", {"name": "A"}))
    body = {
        "agents": {"name": "A", "about": "x"},
        "users": {"name": "U"},
        "sessions": {"agent_id": agent, "situation": "s"},
    }[kind]
    ids = set()
    for _ in range(3):
        answer = api.post(f"/{kind}", body)
        assert answer.status_code == 201
        assert set(answer.json) == {"id", "created_at", "jobs"}
        assert answer.json["jobs"] == []
        assert uuid.UUID(answer.json["id"]).version == 4
        assert str(uuid.UUID(answer.json["id"])) == answer.json["id"]
        assert TIMESTAMP.match(answer.json["created_at"]), answer.json["created_at"]
        stored = fetch(api, kind, answer.json["id"])
        assert stored["id"] == answer.json["id"]
        assert stored["created_at"] == stored["updated_at"] == answer.json["created_at"]
        ids.add(answer.json["id"])
    assert len(ids) == 3


def test_agent_get_answers_every_field_with_defaults(api):
    answer = api.post("/agents", {"name": "Sara"}).json
    assert fetch(api, "agents", answer["id"]) == {
        "id": answer["id"],
        "name": "Sara",
        "about": None,
        "instructions": [],
        "model": DEFAULT_MODEL,
        "default_settings": {},
        "metadata": {},
        "tools": [],
        "expires_at": None,
        "created_at": answer["created_at"],
        "updated_at": answer["created_at"],
    }


def test_agent_as_the_sdk_creates_it_round_trips(api):
    body = {
        "name": "Sara",
        "about": "coach",
        "tools": [],
        "default_settings": {"temperature": 0.7},
        "model": "some/model",
        "docs": [],
        "metadata": {"team": "a"},
        "instructions": ["one", "two"],
    }
    answer = api.post("/agents", body)
    assert fetch(api, "agents", created(answer)) == {
        "id": answer.json["id"],
        "name": "Sara",
        "about": "coach",
        "instructions": ["one", "two"],
        "model": "some/model",
        "default_settings": {"temperature": 0.7},
        "metadata": {"team": "a"},
        "tools": [],
        "expires_at": None,
        "created_at": answer.json["created_at"],
        "updated_at": answer.json["created_at"],
    }


def test_agent_instructions_as_one_string_is_stored_as_a_list(api):
    aid = created(api.post("/agents", {"name": "A", "instructions": "be kind"}))
    assert fetch(api, "agents", aid)["instructions"] == ["be kind"]
    assert api.patch(f"/agents/{aid}", {"instructions": "be brief"}).status_code == 200
    assert fetch(api, "agents", aid)["instructions"] == ["be brief"]
    assert api.put(f"/agents/{aid}", {"name": "A", "about": "x", "instructions": "be late"}).status_code == 200
    assert fetch(api, "agents", aid)["instructions"] == ["be late"]


def test_user_get_answers_every_field_with_defaults(api):
    answer = api.post("/users", {"name": "Ann", "about": "a user", "docs": [], "metadata": {}}).json
    assert fetch(api, "users", answer["id"]) == {
        "id": answer["id"],
        "name": "Ann",
        "about": "a user",
        "metadata": {},
        "expires_at": None,
        "created_at": answer["created_at"],
        "updated_at": answer["created_at"],
    }
    bare = api.post("/users", {}).json
    assert fetch(api, "users", bare["id"]) == {
        "id": bare["id"],
        "name": None,
        "about": None,
        "metadata": {},
        "expires_at": None,
        "created_at": bare["created_at"],
        "updated_at": bare["created_at"],
    }


def test_session_get_answers_every_field_with_defaults(api, agent_id, user_id):
    # as the SDK sends it: explicit nulls for what it was not given
    answer = api.post(
        "/sessions",
        {
            "agent_id": agent_id,
            "user_id": user_id,
            "situation": "hi",
            "metadata": {"db_uuid": "1234"},
            "render_templates": False,
            "token_budget": None,
            "context_overflow": None,
        },
    ).json
    assert fetch(api, "sessions", answer["id"]) == {
        "id": answer["id"],
        "agent_id": agent_id,
        "user_id": user_id,
        "situation": "hi",
        "summary": None,
        "metadata": {"db_uuid": "1234"},
        "render_templates": False,
        "token_budget": None,
        "context_overflow": None,
        "status": "active",
        "ended_at": None,
        "expires_at": None,
        "created_at": answer["created_at"],
        "updated_at": answer["created_at"],
    }
    bare = api.post("/sessions", {"agent_id": agent_id}).json
    assert fetch(api, "sessions", bare["id"]) == {
        "id": bare["id"],
        "agent_id": agent_id,
        "user_id": None,
        "situation": None,
        "summary": None,
        "metadata": {},
        "render_templates": False,
        "token_budget": None,
        "context_overflow": None,
        "status": "active",
        "ended_at": None,
        "expires_at": None,
        "created_at": bare["created_at"],
        "updated_at": bare["created_at"],
    }
    full = created(
        api.post(
            "/sessions",
            {"agent_id": agent_id, "render_templates": True, "token_budget": 4096, "context_overflow": "adaptive"},
        )
    )
    stored = fetch(api, "sessions", full)
    assert (stored["render_templates"], stored["token_budget"], stored["context_overflow"]) == (True, 4096, "adaptive")


# --- 2. session creation rules --------------------------------------------------------------------


@pytest.mark.parametrize("missing_kind", ["agent", "user"])
def test_session_on_a_missing_parent_is_404_and_creates_nothing(api, table, agent_id, user_id, missing_kind):
    missing = str(uuid.uuid4())
    body = {"agent_id": agent_id, "user_id": user_id, "situation": "s", f"{missing_kind}_id": missing}
    before = _key_set(table)
    answer = api.post("/sessions", body)
    assert answer.status_code == 404, answer.json
    assert answer.json["error"]["code"] == "not_found"
    assert missing in answer.json["error"]["message"]
    assert missing_kind in answer.json["error"]["message"]
    assert listed(api, "/sessions") == []
    assert _key_set(table) == before  # not a link, list entry or marker was left behind


def test_session_without_user_is_allowed(api, agent_id):
    ids = []
    for extra in ({}, {"user_id": None}):
        sid = created(api.post("/sessions", {"agent_id": agent_id, "situation": "s", **extra}))
        stored = fetch(api, "sessions", sid)
        assert stored["user_id"] is None and stored["agent_id"] == agent_id
        ids.append(sid)
    assert listed(api, "/sessions") == ids[::-1]


def test_session_ids_must_be_uuids(api, agent_id, user_id):
    for field, value in [
        ("agent_id", "not-a-uuid"),
        ("agent_id", 12),
        ("agent_id", None),
        ("agent_id", ""),
        ("user_id", "nope"),
        ("user_id", 7),
    ]:
        body = {"agent_id": agent_id, "user_id": user_id, "situation": "s", field: value}
        assert_422(api.post("/sessions", body), field)
    assert_422(api.post("/sessions", {"situation": "s"}), "agent_id")
    assert listed(api, "/sessions") == []


def test_unsupported_lists_must_be_empty(api):
    for kind, field in [("agents", "docs"), ("users", "docs")]:
        assert_422(api.post(f"/{kind}", {"name": "X", field: [{"name": "t"}]}), field)
        assert listed(api, f"/{kind}") == []
    aid = created(api.post("/agents", {"name": "X", "tools": [], "docs": []}))
    uid = created(api.post("/users", {"name": "X", "docs": []}))
    assert "docs" not in fetch(api, "agents", aid) and fetch(api, "agents", aid)["tools"] == []
    assert "docs" not in fetch(api, "users", uid)
    assert listed(api, "/agents") == [aid] and listed(api, "/users") == [uid]


# --- 3. PATCH and PUT -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["patch", "put"])
def test_session_update_as_the_sdk_sends_it_writes_only_non_null_fields(api, agent_id, method):
    sid = created(
        api.post(
            "/sessions",
            {
                "agent_id": agent_id,
                "situation": "old",
                "metadata": {"a": 1},
                "token_budget": 100,
                "context_overflow": "truncate",
                "render_templates": True,
            },
        )
    )
    before = fetch(api, "sessions", sid)
    answer = getattr(api, method)(
        f"/sessions/{sid}", {"situation": "x", "metadata": None, "token_budget": None, "context_overflow": None}
    )
    assert answer.status_code == 200, answer.json
    after = fetch(api, "sessions", sid)
    assert after == {**before, "situation": "x", "updated_at": answer.json["updated_at"]}
    assert after["metadata"] == {"a": 1} and after["token_budget"] == 100


def test_agent_patch_changes_only_the_field_given(api):
    aid = created(
        api.post(
            "/agents",
            {
                "name": "Sara",
                "about": "coach",
                "instructions": ["i"],
                "metadata": {"m": 1},
                "default_settings": {"temperature": 1},
            },
        )
    )
    before = fetch(api, "agents", aid)
    answer = api.patch(f"/agents/{aid}", {"about": "x"})
    assert answer.status_code == 200
    assert fetch(api, "agents", aid) == {**before, "about": "x", "updated_at": answer.json["updated_at"]}


@pytest.mark.parametrize("kind", KINDS)
def test_patch_merges_metadata_key_by_key(api, make, kind):
    rid = make(kind, metadata={"a": 1, "b": "two", "c": {"x": 1}})
    assert api.patch(f"/{kind}/{rid}", {"metadata": {"b": "three", "d": [1]}}).status_code == 200
    assert fetch(api, kind, rid)["metadata"] == {"a": 1, "b": "three", "c": {"x": 1}, "d": [1]}
    # a nested object is one value: replaced, not merged
    assert api.patch(f"/{kind}/{rid}", {"metadata": {"c": {"y": 2}}}).status_code == 200
    assert fetch(api, kind, rid)["metadata"] == {"a": 1, "b": "three", "c": {"y": 2}, "d": [1]}
    # a key patched to null is removed; metadata null (as the SDK sends) or {} leaves it alone
    assert api.patch(f"/{kind}/{rid}", {"metadata": {"a": None, "e": 3}}).status_code == 200
    expected = {"b": "three", "c": {"y": 2}, "d": [1], "e": 3}
    assert fetch(api, kind, rid)["metadata"] == expected
    assert api.patch(f"/{kind}/{rid}", {**PATCH_BODY[kind], "metadata": None}).status_code == 200
    assert api.patch(f"/{kind}/{rid}", {"metadata": {}}).status_code == 200
    assert api.patch(f"/{kind}/{rid}", {"metadata": {"never-there": None}}).status_code == 200
    assert fetch(api, kind, rid)["metadata"] == expected
    assert [r["metadata"] for r in api.get(f"/{kind}").json["items"] if r["id"] == rid] == [expected]


@pytest.mark.parametrize("kind", KINDS)
def test_patch_leaves_metadata_keys_it_does_not_name_alone(api, make, kind):
    rid = make(kind, metadata={"a": None, "keep": 1})
    stored = fetch(api, kind, rid)["metadata"]  # whether the null is kept or dropped, a PATCH must not change it
    assert api.patch(f"/{kind}/{rid}", {"metadata": {"other": 2}}).status_code == 200
    assert fetch(api, kind, rid)["metadata"] == {**stored, "other": 2}
    assert api.put(f"/{kind}/{rid}", {**PUT_REQUIRED[kind], "metadata": {"b": None, "z": 1}}).status_code == 200
    stored = fetch(api, kind, rid)["metadata"]
    assert api.patch(f"/{kind}/{rid}", {"metadata": {"other": 3}}).status_code == 200
    assert fetch(api, kind, rid)["metadata"] == {**stored, "other": 3}


def test_session_put_without_situation_is_422_and_changes_nothing(api, session_id):
    before = fetch(api, "sessions", session_id)
    for body in (
        {},
        {"metadata": {"x": 1}},
        {"token_budget": None},
        {"situation": None, "metadata": None, "token_budget": None, "context_overflow": None},
    ):
        assert_422(api.put(f"/sessions/{session_id}", body), "situation")
    assert fetch(api, "sessions", session_id) == before


@pytest.mark.parametrize("kind", KINDS)
def test_put_replaces_metadata_whole(api, make, kind):
    rid = make(kind, metadata={"a": 1, "b": 2})
    answer = api.put(f"/{kind}/{rid}", {**PUT_REQUIRED[kind], "metadata": {"c": 3}})
    assert answer.status_code == 200, answer.json
    stored = fetch(api, kind, rid)
    assert stored["metadata"] == {"c": 3}
    assert {k: stored[k] for k in PUT_REQUIRED[kind]} == PUT_REQUIRED[kind]
    assert api.put(f"/{kind}/{rid}", {**PUT_REQUIRED[kind], "metadata": {}}).status_code == 200
    assert fetch(api, kind, rid)["metadata"] == {}


@pytest.mark.parametrize("kind", ["agents", "users"])
def test_put_on_agents_and_users_requires_name_and_about(api, make, kind):
    rid = make(kind)
    before = fetch(api, kind, rid)
    for missing in ("name", "about"):
        body = {k: v for k, v in PUT_REQUIRED[kind].items() if k != missing}
        assert_422(api.put(f"/{kind}/{rid}", body), missing)
        assert_422(api.put(f"/{kind}/{rid}", {**body, missing: None}), missing)
    assert_422(api.put(f"/{kind}/{rid}", {}), "name", "about")
    assert fetch(api, kind, rid) == before
    assert api.patch(f"/{kind}/{rid}", {"about": "only about"}).status_code == 200


@pytest.mark.parametrize("kind", KINDS)
def test_update_answers_200_id_updated_at_jobs(api, make, kind):
    rid = make(kind)
    for method in ("patch", "put"):
        body = BODY[method][kind]
        answer = getattr(api, method)(f"/{kind}/{rid}", body)
        assert answer.status_code == 200, answer.json
        assert set(answer.json) == {"id", "updated_at", "jobs"}
        assert answer.json["id"] == rid and answer.json["jobs"] == []
        assert TIMESTAMP.match(answer.json["updated_at"])
        stored = fetch(api, kind, rid)
        assert stored["updated_at"] == answer.json["updated_at"]
        assert {k: stored[k] for k in body} == body


@pytest.mark.parametrize("kind", KINDS)
def test_update_of_a_missing_record_is_404(api, make, kind):
    make(kind)
    for rid in (str(uuid.uuid4()), "nope"):
        for method in ("patch", "put"):
            answer = getattr(api, method)(f"/{kind}/{rid}", BODY[method][kind])
            assert answer.status_code == 404, answer.json
            assert answer.json["error"]["code"] == "not_found"
        assert api.get(f"/{kind}/{rid}").status_code == 404
    assert len(listed(api, f"/{kind}")) == 1


def test_invalid_values_are_422_and_change_nothing(api, session_id, agent_id, user_id):
    cases = [
        ("sessions", session_id, {"token_budget": 0}, "token_budget"),
        ("sessions", session_id, {"token_budget": "5"}, "token_budget"),
        ("sessions", session_id, {"context_overflow": "drop"}, "context_overflow"),
        ("sessions", session_id, {"render_templates": "yes"}, "render_templates"),
        ("sessions", session_id, {"metadata": "not an object"}, "metadata"),
        ("agents", agent_id, {"metadata": [1]}, "metadata"),
        ("agents", agent_id, {"model": ""}, "model"),
        ("agents", agent_id, {"instructions": 5}, "instructions"),
        ("users", user_id, {"name": 5}, "name"),
    ]
    before = {kind: fetch(api, kind, rid) for kind, rid, _, _ in cases}
    for kind, rid, body, field in cases:
        assert_422(api.patch(f"/{kind}/{rid}", body), field)
    assert {kind: fetch(api, kind, rid) for kind, rid, _, _ in cases} == before


# --- 4. immutable and unknown fields --------------------------------------------------------------

SESSION_IMMUTABLE = ["agent_id", "user_id", "id", "created_at", "updated_at", "summary"]
RECORD_IMMUTABLE = ["id", "created_at", "updated_at"]


def _immutable_values(api) -> dict[str, Any]:
    return {
        "agent_id": created(api.post("/agents", {"name": "Other"})),
        "user_id": created(api.post("/users", {"name": "Other"})),
        "id": str(uuid.uuid4()),
        "created_at": "2020-01-01T00:00:00.000000Z",
        "updated_at": "2099-01-01T00:00:00.000000Z",
        "summary": "a summary",
    }


@pytest.mark.parametrize("method", ["patch", "put"])
def test_session_immutable_fields_are_refused_and_change_nothing(api, session_id, method):
    values = _immutable_values(api)
    before = fetch(api, "sessions", session_id)
    for field in SESSION_IMMUTABLE:
        for value in (values[field], None):
            answer = getattr(api, method)(f"/sessions/{session_id}", {"situation": "changed?", field: value})
            assert_422(answer, field)
            assert field in answer.json["error"]["message"]
    assert_422(
        getattr(api, method)(
            f"/sessions/{session_id}",
            {"situation": "changed?", "agent_id": values["agent_id"], "summary": "s", "id": session_id},
        ),
        "agent_id",
        "summary",
        "id",
    )
    assert fetch(api, "sessions", session_id) == before
    assert listed(api, "/sessions") == [session_id]


@pytest.mark.parametrize("kind", ["agents", "users"])
def test_agent_and_user_immutable_fields_are_refused_and_change_nothing(api, make, kind):
    values = _immutable_values(api)
    rid = make(kind, metadata={"k": 1})
    before = fetch(api, kind, rid)
    for method in ("patch", "put"):
        for field in RECORD_IMMUTABLE:
            assert_422(getattr(api, method)(f"/{kind}/{rid}", {**PUT_REQUIRED[kind], field: values[field]}), field)
    assert fetch(api, kind, rid) == before


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_fields_are_422_naming_them(api, make, agent_id, kind):
    rid = make(kind, agent_id=agent_id) if kind == "sessions" else make(kind)
    before = fetch(api, kind, rid)
    for method in ("patch", "put"):
        answer = getattr(api, method)(f"/{kind}/{rid}", {**PUT_REQUIRED[kind], "colour": "red", "sumary": "x"})
        assert_422(answer, "colour", "sumary")
    assert fetch(api, kind, rid) == before
    create_body = {"agents": {"name": "A"}, "users": {"name": "U"}, "sessions": {"agent_id": agent_id}}[kind]
    assert_422(api.post(f"/{kind}", {**create_body, "colour": "red"}), "colour")
    assert listed(api, f"/{kind}") == ([rid, agent_id] if kind == "agents" else [rid])


# --- 5. timestamps move forward -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_update_moves_updated_at_forward_and_keeps_created_at(api, make, kind):
    rid = make(kind)
    first = fetch(api, kind, rid)
    last = first["updated_at"]
    for n in range(8):
        # Each update changes something: one that changes nothing writes nothing (test_reliability.py).
        if n % 3 == 0:
            answer = api.put(f"/{kind}/{rid}", {**PUT_REQUIRED[kind], "metadata": {"put": n}})
        elif n % 3 == 1:
            answer = api.patch(f"/{kind}/{rid}", {"metadata": {"n": n}})
        else:
            answer = api.patch(f"/{kind}/{rid}", {"metadata": {"n": None}})
        assert answer.status_code == 200, answer.json
        assert answer.json["updated_at"] > last
        stored = fetch(api, kind, rid)
        assert stored["updated_at"] == answer.json["updated_at"]
        assert stored["created_at"] == first["created_at"]
        last = answer.json["updated_at"]


# --- 6. delete and cascades ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_delete_answers_202_and_the_record_is_gone(api, make, kind):
    keep = make(kind)
    rid = make(kind)
    answer = api.delete(f"/{kind}/{rid}")
    assert answer.status_code == 202, answer.json
    assert set(answer.json) == {"id", "deleted_at"}
    assert answer.json["id"] == rid
    assert TIMESTAMP.match(answer.json["deleted_at"])
    assert_gone(api, kind, rid)
    assert listed(api, f"/{kind}") == [keep]
    assert listed(api, f"/{kind}?sort_by=updated_at") == [keep]
    for gone in (rid, str(uuid.uuid4()), "nope"):
        again = api.delete(f"/{kind}/{gone}")
        assert again.status_code == 404, again.json
        assert again.json["error"]["code"] == "not_found"
    assert api.patch(f"/{kind}/{rid}", PATCH_BODY[kind]).status_code == 404
    assert api.get(f"/{kind}/{rid}").status_code == 404
    assert fetch(api, kind, keep)["id"] == keep


def test_deleting_a_session_removes_its_history(api, table, session_id, agent_id, user_id):
    append(api, session_id, "one", "two", "three")
    assert api.delete(f"/sessions/{session_id}").status_code == 202
    assert_gone(api, "sessions", session_id)
    assert items_mentioning(table, session_id) == []
    assert fetch(api, "agents", agent_id)["id"] == agent_id
    assert fetch(api, "users", user_id)["id"] == user_id
    # the parents still delete cleanly afterwards
    assert api.delete(f"/agents/{agent_id}").status_code == 202
    assert api.delete(f"/users/{user_id}").status_code == 202
    assert items_mentioning(table, agent_id, user_id, "purge") == []


@pytest.mark.parametrize("parent_kind", ["agents", "users"])
def test_deleting_a_parent_removes_its_sessions_and_their_histories(api, table, parent_kind):
    agents = [created(api.post("/agents", {"name": f"A{n}"})) for n in range(2)]
    users = [created(api.post("/users", {"name": f"U{n}"})) for n in range(2)]
    doomed_parent = agents[0] if parent_kind == "agents" else users[0]
    doomed, kept = [], []
    for a in agents:
        for u in users:
            sid = created(api.post("/sessions", {"agent_id": a, "user_id": u, "situation": "s"}))
            append(api, sid, f"hello {sid}", "again")
            (doomed if doomed_parent in (a, u) else kept).append(sid)
    kept_histories = {sid: history(api, sid) for sid in kept}
    kept_sessions = {sid: fetch(api, "sessions", sid) for sid in kept}

    answer = api.delete(f"/{parent_kind}/{doomed_parent}")
    assert answer.status_code == 202, answer.json
    assert_gone(api, parent_kind, doomed_parent)
    for sid in doomed:
        assert_gone(api, "sessions", sid)
    assert sorted(listed(api, "/sessions")) == sorted(kept)
    assert {sid: fetch(api, "sessions", sid) for sid in kept} == kept_sessions
    assert {sid: history(api, sid) for sid in kept} == kept_histories
    assert items_mentioning(table, doomed_parent, *doomed) == []
    assert items_mentioning(table, "purge") == []
    other, survivors = ("users", users) if parent_kind == "agents" else ("agents", agents)
    assert sorted(listed(api, f"/{other}")) == sorted(survivors)
    # a new session for the deleted parent is refused
    answer = api.post("/sessions", {"agent_id": agents[0], "user_id": users[0], "situation": "s"})
    assert answer.status_code == 404, answer.json
    assert doomed_parent in answer.json["error"]["message"]
    assert sorted(listed(api, "/sessions")) == sorted(kept)


def test_deleting_an_agent_with_more_sessions_than_one_batch(api, table):
    agent = created(api.post("/agents", {"name": "A"}))
    user = created(api.post("/users", {"name": "U"}))
    other_agent = created(api.post("/agents", {"name": "B"}))
    sessions = [
        created(api.post("/sessions", {"agent_id": agent, "user_id": user, "situation": str(n)})) for n in range(30)
    ]
    for sid in sessions[::10]:
        append(api, sid, "a", "b", "c")
    survivor = created(api.post("/sessions", {"agent_id": other_agent, "user_id": user, "situation": "stay"}))
    append(api, survivor, "kept")
    assert len(listed(api, "/sessions?limit=1000")) == 31

    answer = api.delete(f"/agents/{agent}")
    assert answer.status_code == 202, answer.json
    assert listed(api, "/sessions?limit=1000") == [survivor]
    assert listed(api, "/sessions?limit=1000&sort_by=updated_at") == [survivor]
    for sid in sessions[::10]:  # the table scan below covers every one of them
        assert api.get(f"/sessions/{sid}").status_code == 404
        assert api.get(f"/sessions/{sid}/history").status_code == 404
    assert items_mentioning(table, agent, *sessions) == []
    assert items_mentioning(table, "purge") == []
    assert [m["content"] for m in history(api, survivor)] == ["kept"]
    # the user (shared with the survivor) still deletes cleanly, taking the survivor with it
    assert api.delete(f"/users/{user}").status_code == 202
    assert listed(api, "/sessions") == []
    assert items_mentioning(table, user, survivor, "purge") == []


# --- 7. lists -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_list_order_newest_first_by_default(api, make, kind):
    assert api.get(f"/{kind}").json == {"items": [], "next_cursor": None}
    ids = [make(kind) for _ in range(4)]
    answer = api.get(f"/{kind}")
    assert answer.status_code == 200 and set(answer.json) == {"items", "next_cursor"}
    assert [i["id"] for i in answer.json["items"]] == ids[::-1]
    assert answer.json["items"] == [fetch(api, kind, rid) for rid in ids[::-1]]
    assert listed(api, f"/{kind}?order=desc") == ids[::-1]
    assert listed(api, f"/{kind}?order=asc") == ids
    assert listed(api, f"/{kind}?sort_by=created_at&order=asc") == ids


@pytest.mark.parametrize("kind", KINDS)
def test_list_sorted_by_updated_at(api, make, kind):
    a, b, c = (make(kind) for _ in range(3))
    assert listed(api, f"/{kind}?sort_by=updated_at") == [c, b, a]
    assert api.patch(f"/{kind}/{a}", PATCH_BODY[kind]).status_code == 200
    assert listed(api, f"/{kind}?sort_by=updated_at") == [a, c, b]
    assert listed(api, f"/{kind}?sort_by=updated_at&order=asc") == [b, c, a]
    assert listed(api, f"/{kind}") == [c, b, a]  # creation order untouched
    assert api.put(f"/{kind}/{b}", PUT_REQUIRED[kind]).status_code == 200
    assert listed(api, f"/{kind}?sort_by=updated_at") == [b, a, c]
    for _ in range(3):  # once in the list however often updated
        assert api.patch(f"/{kind}/{c}", PATCH_BODY[kind]).status_code == 200
    assert listed(api, f"/{kind}?sort_by=updated_at") == [c, b, a]
    assert listed(api, f"/{kind}?sort_by=updated_at&limit=2&offset=1") == [b, a]


@pytest.mark.parametrize("kind", KINDS)
def test_paging_walks_every_item_exactly_once(api, make, kind):
    ids = [make(kind) for _ in range(5)]
    for order, expected in (("desc", ids[::-1]), ("asc", ids)):
        walked = []
        for offset in range(0, 6, 2):
            page = listed(api, f"/{kind}?limit=2&offset={offset}&order={order}")
            assert len(page) == min(2, 5 - offset)
            walked += page
        assert walked == expected
    assert listed(api, f"/{kind}?limit=1000&offset=3&order=asc") == ids[3:]
    assert listed(api, f"/{kind}?offset=4") == [ids[0]]
    assert listed(api, f"/{kind}?limit=1") == [ids[-1]]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_list_parameters_are_400(api, make, kind):
    make(kind)
    for query in [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=",
        "limit=1.5",
        "limit=-1",
        "offset=-1",
        "offset=abc",
        "sort_by=name",
        "sort_by=",
        "order=up",
        "order=DESC",
        "foo=bar",
        "limit=10&foo=bar",
        "metadata_filter=%7B&limit=1",
    ]:
        answer = api.get(f"/{kind}?{query}")
        assert answer.status_code == 400, (query, answer.json)
        assert answer.json["error"]["code"] == "bad_request"
        assert answer.json["error"]["message"]
    assert listed(api, f"/{kind}?limit=1000&offset=0&sort_by=updated_at&order=asc&metadata_filter=%7B%7D")


# --- 8. metadata_filter ---------------------------------------------------------------------------

TYPED = {
    "int": {"v": 1},
    "str": {"v": "1"},
    "bool": {"v": True},
    "float": {"v": 1.0},
    "nested": {"v": {"a": [1, 2]}},
    "other": {"w": 1},
    "empty": {},
}
TYPED_FILTERS = [
    ({"v": 1}, {"int", "float"}),
    ({"v": 1.0}, {"int", "float"}),
    ({"v": "1"}, {"str"}),
    ({"v": True}, {"bool"}),
    ({"v": False}, set()),
    ({"v": 0}, set()),
    ({"v": {"a": [1, 2]}}, {"nested"}),
    ({"v": {"a": [1]}}, set()),
    ({"v": {"a": [2, 1]}}, set()),
    ({"v": {"a": [1, 2], "b": 1}}, set()),
    ({"v": {}}, set()),
    ({"v": None}, set()),
    ({"w": 1}, {"other"}),
    ({"missing": 1}, set()),
    ({}, set(TYPED)),
]


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_filter_typed_equality(api, make, kind):
    records = {label: make(kind, metadata=metadata) for label, metadata in TYPED.items()}
    everything = listed(api, f"/{kind}")
    # the whole matrix on sessions; the same code serves agents and users, so a sample there
    cases = TYPED_FILTERS if kind == "sessions" else [TYPED_FILTERS[i] for i in (0, 2, 3, 6, 7, 13, 14)]
    for wanted, labels in cases:
        got = filtered(api, kind, wanted)
        assert set(got) == {records[label] for label in labels}, (wanted, got)
        assert got == [rid for rid in everything if rid in got]  # the list's order is kept


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_filter_is_an_and_of_its_keys(api, make, kind):
    both = make(kind, metadata={"a": 1, "b": "x", "c": True})
    only_a = make(kind, metadata={"a": 1, "b": "y"})
    only_b = make(kind, metadata={"b": "x", "db_uuid": "1234"})
    assert filtered(api, kind, {"a": 1, "b": "x"}) == [both]
    assert filtered(api, kind, {"a": 1}) == [only_a, both]
    assert filtered(api, kind, {"b": "x"}) == [only_b, both]
    assert filtered(api, kind, {"a": 1, "b": "x", "c": True}) == [both]
    assert filtered(api, kind, {"a": 1, "b": "x", "c": False}) == []
    # exactly as the SDK encodes it
    assert listed(api, f"/{kind}?metadata_filter=%7B%22db_uuid%22%3A+%221234%22%7D") == [only_b]
    assert len(listed(api, f"/{kind}?metadata_filter=%7B%7D")) == 3
    assert len(listed(api, f"/{kind}?metadata_filter=")) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_filter_must_be_a_json_object(api, make, kind):
    make(kind)
    for text in ["{", "{'a': 1}", "[]", '[{"a": 1}]', '"a"', "1", "null", "true", '{"a": NaN}', "{} x"]:
        answer = api.get(f"/{kind}?metadata_filter={quote(text)}")
        assert answer.status_code == 400, (text, answer.json)
        assert answer.json["error"]["code"] == "bad_request"


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_filter_combines_with_limit_offset_and_sort(api, make, kind):
    ids = [make(kind, metadata={"even": n % 2 == 0, "n": n}) for n in range(7)]
    evens = ids[::2]
    for order, expected in (("desc", evens[::-1]), ("asc", evens)):
        walked = []
        for offset in (0, 2):
            walked += filtered(api, kind, {"even": True}, f"&limit=2&offset={offset}&order={order}")
        assert walked == expected
        assert filtered(api, kind, {"even": True}, f"&limit=10&offset=3&order={order}") == expected[3:]
        assert filtered(api, kind, {"even": True}, f"&limit=1&offset=1&order={order}") == expected[1:2]
    assert api.patch(f"/{kind}/{ids[0]}", {"metadata": {"u": 1}}).status_code == 200
    assert filtered(api, kind, {"even": True}, "&sort_by=updated_at&limit=2") == [ids[0], ids[6]]
    assert filtered(api, kind, {"even": True, "u": 1}) == [ids[0]]


ODD_KEYS = ["#a = :b OR", "a.b", ":v", "#pk", "size(a[0])", "é ✓ a&b=c x+y %41"]


@pytest.mark.parametrize("kind", KINDS)
def test_odd_metadata_keys_round_trip_and_filter(api, make, kind):
    """Keys that look like DynamoDB expression syntax or need URL escaping are plain keys."""
    decoy = make(kind, metadata={key: "no" for key in ODD_KEYS})
    hits = {key: make(kind, metadata={key: "yes", "plain": 1}) for key in ODD_KEYS}
    stored = {item["id"]: item["metadata"] for item in api.get(f"/{kind}").json["items"]}
    assert stored == {
        decoy: {key: "no" for key in ODD_KEYS},
        **{rid: {key: "yes", "plain": 1} for key, rid in hits.items()},
    }
    for key, rid in hits.items():
        assert filtered(api, kind, {key: "yes", "plain": 1}) == [rid], key
    assert filtered(api, kind, {key: "no" for key in ODD_KEYS}) == [decoy]
    patched = hits[ODD_KEYS[0]]
    assert api.patch(f"/{kind}/{patched}", {"metadata": {ODD_KEYS[0]: None, "a.b": 2}}).status_code == 200
    assert fetch(api, kind, patched)["metadata"] == {"plain": 1, "a.b": 2}
    assert filtered(api, kind, {ODD_KEYS[0]: "yes"}) == []
    assert filtered(api, kind, {"a.b": 2}) == [patched]


# --- 9. history ------------------------------------------------------------------------------------


def test_history_append_answers_201_with_the_messages(api, session_id):
    answer = api.post(
        f"/sessions/{session_id}/history",
        {
            "messages": [
                {"role": "user", "content": "hi", "name": "Ann"},
                {"role": "assistant", "content": "hello"},
                {"role": "system", "content": "sys", "name": None},
                {"role": "function", "content": '{"x": 1}'},
            ]
        },
    )
    assert answer.status_code == 201, answer.json
    assert set(answer.json) == {"items"}
    items = answer.json["items"]
    for item in items:
        assert set(item) == {"id", "role", "content", "name", "created_at"}
        assert uuid.UUID(item["id"]).version == 4
        assert TIMESTAMP.match(item["created_at"])
    assert [(i["role"], i["content"], i["name"]) for i in items] == [
        ("user", "hi", "Ann"),
        ("assistant", "hello", None),
        ("system", "sys", None),
        ("function", '{"x": 1}', None),
    ]
    assert len({i["id"] for i in items}) == 4
    assert history(api, session_id) == items


def test_history_is_oldest_first_and_pages(api, session_id):
    messages = (
        append(api, session_id, "m0", "m1", "m2") + append(api, session_id, "m3", "m4") + append(api, session_id, "m5")
    )
    assert [m["content"] for m in history(api, session_id)] == [f"m{n}" for n in range(6)]
    assert history(api, session_id) == messages
    walked = []
    for offset in (0, 4):
        walked += history(api, session_id, f"?limit=4&offset={offset}")
    assert walked == messages
    assert history(api, session_id, "?limit=2") == messages[:2]
    assert history(api, session_id, "?offset=5") == messages[5:]
    assert history(api, session_id, "?offset=6") == []
    for query in ["limit=0", "limit=1001", "limit=abc", "offset=-1", "order=up", "offset=10001", "foo=1"]:
        answer = api.get(f"/sessions/{session_id}/history?{query}")
        assert answer.status_code == 400, (query, answer.json)
        assert answer.json["error"]["code"] == "bad_request"


def test_history_append_invalid_is_422_and_appends_nothing(api, session_id):
    append(api, session_id, "before")
    ok = {"role": "user", "content": "ok"}
    for body, field in [
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [ok, {"role": "Bot", "content": "x"}]}, "messages.1.role"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "x", "extra": 1}]}, "messages.0.extra"),
        ({"messages": []}, "messages"),
        ({"messages": [ok] * 51}, "messages"),
        ({}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [ok], "role": "user"}, "role"),
    ]:
        assert_422(api.post(f"/sessions/{session_id}/history", body), field)
    assert [m["content"] for m in history(api, session_id)] == ["before"]
    fifty = append(api, session_id, *[f"m{n}" for n in range(50)])
    assert len(fifty) == 50
    assert [m["content"] for m in history(api, session_id)] == ["before"] + [f"m{n}" for n in range(50)]


def test_delete_history_empties_it_and_keeps_the_session(api, table, session_id):
    append(api, session_id, "a", "b")
    before = fetch(api, "sessions", session_id)
    answer = api.delete(f"/sessions/{session_id}/history")
    assert answer.status_code == 202, answer.json
    assert set(answer.json) == {"id", "deleted_at"}
    assert answer.json["id"] == session_id
    assert TIMESTAMP.match(answer.json["deleted_at"])
    assert history(api, session_id) == []
    assert fetch(api, "sessions", session_id)["created_at"] == before["created_at"]
    assert listed(api, "/sessions") == [session_id]
    assert [i for i in items_mentioning(table, session_id) if "content" in i] == []  # no message left
    assert api.delete(f"/sessions/{session_id}/history").status_code == 202  # already empty: fine
    assert [m["content"] for m in append(api, session_id, "c")] == ["c"]
    assert [m["content"] for m in history(api, session_id)] == ["c"]


def test_history_of_a_missing_session_is_404(api, session_id, make):
    deleted = make("sessions")
    assert api.delete(f"/sessions/{deleted}").status_code == 202
    for sid in (str(uuid.uuid4()), "nope", deleted):
        path = f"/sessions/{sid}/history"
        for answer in (
            api.get(path),
            api.post(path, {"messages": [{"role": "user", "content": "x"}]}),
            api.delete(path),
            api.get(path),
        ):
            assert answer.status_code == 404, (sid, answer.json)
            assert answer.json["error"]["code"] == "not_found"
    assert history(api, session_id) == []


# --- 10. JSON numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_json_numbers_round_trip_exactly(api, make, kind):
    big = 12345678901234567890
    sent = {"x": 0.1, "big": big, "neg": -7, "f": 2.5, "zero": 0, "list": [0.1, big], "deep": {"y": 0.3}}
    rid = make(kind, metadata=sent)
    answer = api.get(f"/{kind}/{rid}")
    raw = answer.body.decode() if isinstance(answer.body, bytes) else answer.body
    metadata = json.loads(raw)["metadata"]
    assert metadata == sent
    assert type(metadata["big"]) is int and type(metadata["zero"]) is int
    assert type(metadata["x"]) is float
    assert "12345678901234567890" in raw and '"x":0.1' in raw.replace(" ", "")
    assert [r["metadata"] for r in api.get(f"/{kind}").json["items"] if r["id"] == rid] == [sent]
    assert filtered(api, kind, {"big": big}) == [rid]
    assert filtered(api, kind, {"big": big + 1}) == []
    assert filtered(api, kind, {"x": 0.1}) == [rid]
    assert filtered(api, kind, {"x": 0.10000000000000001, "deep": {"y": 0.3}}) == [rid]
    assert api.patch(f"/{kind}/{rid}", {"metadata": {"other": 1}}).status_code == 200
    assert fetch(api, kind, rid)["metadata"] == {**sent, "other": 1}


# DynamoDB numbers hold 38 significant digits, magnitudes about 1E-130 to 1E+125. A JSON number is
# either kept (integers exactly; fractions go out as JSON doubles, so equal as doubles) or refused as
# the client's error (4xx, nothing written); never a 500.
NUMBER_CASES = [
    pytest.param(
        "agents",
        "post",
        '{"name": "A", "metadata": {"x": 123456789012345678901234567890123456789}}',
        ("metadata", "x"),
        id="agent-39-digit-int",
    ),
    pytest.param(
        "sessions",
        "post",
        '{"agent_id": "%(agent)s", "metadata": {"x": 0.1234567890123456789012345678901234567890}}',
        ("metadata", "x"),
        id="session-40-digit-fraction",
    ),
    pytest.param(
        "sessions",
        "patch",
        '{"metadata": {"x": 10000000000000000000000000000000000000000}}',
        ("metadata", "x"),
        id="session-patch-int-1e40",
    ),
    pytest.param("users", "post", '{"name": "U", "metadata": {"x": 1e400}}', ("metadata", "x"), id="user-1e400"),
    pytest.param(
        "sessions",
        "post",
        '{"agent_id": "%(agent)s", "token_budget": 10000000000000000000000000000000000000000}',
        ("token_budget",),
        id="session-token_budget-1e40",
    ),
    pytest.param(
        "agents", "patch", '{"default_settings": {"t": 1e-400}}', ("default_settings", "t"), id="agent-patch-1e-400"
    ),
    pytest.param(
        "users",
        "post",
        '{"metadata": {"x": 12345678901234567890123456789012345678}}',
        ("metadata", "x"),
        id="user-38-digit-int",
    ),
    pytest.param(
        "agents",
        "post",
        '{"name": "A", "metadata": {"x": -0.1234567890123456789012345678901234567}}',
        ("metadata", "x"),
        id="agent-37-digit-fraction",
    ),
    pytest.param(
        "sessions",
        "patch",
        '{"metadata": {"x": 1.5e125, "y": 2.5e-130}}',
        ("metadata", "x"),
        id="session-patch-extremes",
    ),
]


def _number_at(raw: str | bytes, path: tuple[str, ...]) -> Any:
    value = json.loads(raw, parse_float=Decimal)
    for part in path:
        value = value[part]
    return value


@pytest.mark.parametrize("kind,method,raw,path", NUMBER_CASES)
def test_numbers_are_stored_exactly_or_refused(api, agent_id, session_id, kind, method, raw, path):
    raw = raw % {"agent": agent_id}
    target = {"agents": agent_id, "sessions": session_id}.get(kind)
    before_list = listed(api, f"/{kind}")
    before = fetch(api, kind, target) if method == "patch" else None
    answer = getattr(api, method)(f"/{kind}" if method == "post" else f"/{kind}/{target}", raw=raw)
    assert answer.status_code < 500, (answer.status_code, answer.json)
    if answer.status_code < 300:  # kept: then exactly
        stored = api.get(f"/{kind}/{answer.json['id']}")
        assert stored.status_code == 200
        sent, got = _number_at(raw, path), _number_at(stored.body, path)
        assert got == sent if isinstance(sent, int) else float(got) == float(sent)
        return
    assert answer.status_code in (400, 422), answer.json
    assert listed(api, f"/{kind}") == before_list
    if before is not None:
        assert fetch(api, kind, target) == before


@pytest.mark.parametrize("kind", KINDS)
def test_patch_merged_metadata_stays_within_its_bound(api, make, kind):
    chunk = ["x" * 13_400] * 3  # one such key (40 KB) is within the 64 KiB bound; two are not (strings: 16 KiB each)
    rid = make(kind, metadata={"k0": chunk})
    assert_422(
        api.post(
            f"/{kind}",
            {
                **({"agent_id": fetch(api, kind, rid)["agent_id"]} if kind == "sessions" else {"name": "A"}),
                "metadata": {"a": chunk, "b": chunk},
            },
        ),
        "metadata",
    )
    for n in range(1, 10):
        answer = api.patch(f"/{kind}/{rid}", {"metadata": {f"k{n}": chunk}})
        assert answer.status_code in (200, 422), (n, answer.status_code, answer.json)
        stored = fetch(api, kind, rid)["metadata"]
        assert len(json.dumps(stored, ensure_ascii=False).encode()) <= 64 * 1024, (n, answer.status_code)


def test_ids_are_case_insensitive_and_answered_in_lower_case(api, agent_id, user_id):
    """Issue 12, item 10: UUIDs are case-insensitive (RFC 9562); an upper-case one was a 404."""
    session = api.post("/sessions", {"agent_id": agent_id.upper(), "user_id": user_id.upper(), "situation": "s"})
    assert session.status_code == 201, session.json
    sid = session.json["id"]
    got = api.get(f"/sessions/{sid.upper()}")
    assert got.status_code == 200
    assert (got.json["id"], got.json["agent_id"], got.json["user_id"]) == (sid, agent_id, user_id)
    assert [
        s["id"] for s in api.get(f"/sessions?agent_id={agent_id.upper()}&user_id={user_id.upper()}").json["items"]
    ] == [sid]
    assert (
        api.post(f"/sessions/{sid.upper()}/history", {"messages": [{"role": "user", "content": "hi"}]}).status_code
        == 201
    )
    assert [m["content"] for m in api.get(f"/sessions/{sid.upper()}/history").json["items"]] == ["hi"]
    assert api.patch(f"/agents/{agent_id.upper()}", {"about": "x"}).json["id"] == agent_id
    assert api.get(f"/agents/{agent_id.upper()}").json["about"] == "x"
    assert api.delete(f"/sessions/{sid.upper()}").status_code == 202
    assert api.get(f"/sessions/{sid}").status_code == 404


def test_the_store_hands_back_typed_records_whose_numbers_the_rules_count_with_are_ints(api, table, agent_id):
    """store/stored.py record_of: DynamoDB gives numbers back as Decimal; a record's version, its
    expiry and a session's token budget come back as ints (so the rules never write int(...)),
    and the other numbers stay as written."""
    created = api.post(
        "/sessions", {"agent_id": agent_id, "ttl": 600, "token_budget": 900, "metadata": {"n": 1.5}}
    ).json
    api.patch(f"/sessions/{created['id']}", {"metadata": {"m": 2}})
    record = table.get("alice", "session", created["id"])
    assert [type(record[name]) for name in ("version", "expires_at", "token_budget")] == [int, int, int]
    assert record["version"] == 2 and record["token_budget"] == 900
    assert record["metadata"] == {"n": Decimal("1.5"), "m": Decimal("2")}
    assert type(table.get_many("alice", "session", [created["id"]])[created["id"]]["version"]) is int
