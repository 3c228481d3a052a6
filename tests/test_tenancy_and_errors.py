"""Tenancy, authentication and the one error shape, walked over every route of the operations table.

Every failing request must answer `{"error": {"code", "message", "details"}}` as JSON and leave the
table exactly as it was; another developer's ids must look exactly like ids that do not exist; and
no input, however odd, may turn into a 500.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
import uuid
from typing import Any

import pytest

from chalicelib.shared import jsonio
from conftest import KEYS, ROUTES, scan_all

ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]
PER_ID_ROUTES = [route for route in ROUTES if "{" in route[1]]
BODY_OPERATIONS = {"create", "replace", "patch", "append"}
META = {"db_uuid": "1234"}


# --- helpers ----------------------------------------------------------------------------------------


def header(response, name: str) -> str | None:
    for key, value in (response.headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def assert_error(response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape, as JSON, with the given status (and code)."""
    assert response.status_code == status, (response.status_code, response.body[:500])
    content_type = header(response, "Content-Type") or ""
    assert content_type.split(";")[0].strip() == "application/json", content_type
    body = response.json
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    for detail in error["details"]:
        assert isinstance(detail, dict)
    if code is not None:
        assert error["code"] == code, error
    return error


def assert_4xx(response) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.body[:500])
    return assert_error(response, response.status_code)


def developer_items(store, developer: str) -> list[dict[str, Any]]:
    """A developer's data: everything under their prefix but the list of their API keys."""
    return [
        item
        for item in scan_all(store)
        if item["pk"]["S"].startswith(f"dev#{developer}#") and item["pk"]["S"] != f"dev#{developer}#apikeys"
    ]


def strings_in(value: Any) -> list[str]:
    """Every string anywhere in a raw DynamoDB item (names and values)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, (list, tuple, set)):
        return [s for v in value for s in strings_in(v)]
    if isinstance(value, (bytes, bytearray)):
        return [bytes(value).decode("utf-8", "replace")]
    return []


def fill(path: str, ids: dict[str, str]) -> str:
    return path.format(**ids)


def random_ids() -> dict[str, str]:
    return {
        "agent_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "session_id": str(uuid.uuid4()),
        "message_id": str(uuid.uuid4()),
        "checkpoint_id": str(uuid.uuid4()),
    }


def valid_body(operation: str, ids: dict[str, str]) -> dict[str, Any] | None:
    """A body that would succeed for `operation` on the resources named by ids."""
    return {
        "agents.create": {"name": "Mallory", "metadata": dict(META)},
        "agents.replace": {"name": "Replaced", "about": "replaced"},
        "agents.patch": {"name": "Patched", "metadata": {"x": 1}},
        "users.create": {"name": "Mallory", "metadata": dict(META)},
        "users.replace": {"name": "Replaced", "about": "replaced"},
        "users.patch": {"about": "patched", "metadata": {"x": 1}},
        "sessions.create": {
            "agent_id": ids["agent_id"],
            "user_id": ids["user_id"],
            "situation": "s",
            "metadata": dict(META),
        },
        "sessions.replace": {"situation": "replaced"},
        "sessions.patch": {"situation": "patched", "metadata": {"x": 1}},
        "sessions.history.append": {"messages": [{"role": "user", "content": "injected"}]},
        "sessions.chat": {"messages": [{"role": "user", "content": "injected"}]},
        "sessions.fork": {"up_to": ids["message_id"], "metadata": {"x": 1}},
        "sessions.checkpoints.put": {"checkpoint": {"type": "t", "data": "aW5qZWN0ZWQ="}},
        "sessions.checkpoints.writes.put": {
            "task_id": "t",
            "writes": [{"channel": "c", "idx": 0, "value": {"type": "t", "data": "aW5qZWN0ZWQ="}}],
        },
    }.get(operation)


def q(value: Any) -> str:
    return urllib.parse.quote(value if isinstance(value, str) else json.dumps(value), safe="")


def alice_view(api, world: dict[str, str]) -> dict[str, Any]:
    """What alice gets back for each of her resources, and her session's history."""
    view: dict[str, Any] = {}
    for path in (
        "/agents/{agent_id}",
        "/users/{user_id}",
        "/sessions/{session_id}",
        "/sessions/{session_id}/history?limit=1000",
        "/sessions/{session_id}/checkpoints/{checkpoint_id}",
    ):
        response = api.get(fill(path, world))
        assert response.status_code == 200, (path, response.body)
        view[path] = response.json
    return view


def list_ids(api, plural: str, query: str = "") -> list[str]:
    response = api.get(f"/{plural}{query}")
    assert response.status_code == 200, response.body
    return [item["id"] for item in response.json["items"]]


def normalized(error: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """An error with the ids it names replaced by placeholders, to compare two 404s."""
    text = json.dumps(error, sort_keys=True)
    for name, value in ids.items():
        text = text.replace(value, f"<{name}>")
    return json.loads(text)


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def world(api) -> dict[str, str]:
    """Alice's agent, user and session (with two messages of history), all carrying metadata META."""
    agent = api.post("/agents", {"name": "Sara", "about": "coach", "instructions": ["be kind"], "metadata": dict(META)})
    user = api.post("/users", {"name": "Ann", "about": "a user", "metadata": dict(META)})
    assert agent.status_code == 201 and user.status_code == 201, (agent.body, user.body)
    session = api.post(
        "/sessions",
        {"agent_id": agent.json["id"], "user_id": user.json["id"], "situation": "hi", "metadata": dict(META)},
    )
    assert session.status_code == 201, session.body
    appended = api.post(
        f"/sessions/{session.json['id']}/history",
        {
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi there", "name": "Sara"},
            ]
        },
    )
    assert appended.status_code == 201, appended.body
    checkpoint = api.put(
        f"/sessions/{session.json['id']}/checkpoints/ck-alice", {"checkpoint": {"type": "t", "data": "c3RhdGU="}}
    )
    assert checkpoint.status_code == 200, checkpoint.body
    return {
        "agent_id": agent.json["id"],
        "user_id": user.json["id"],
        "session_id": session.json["id"],
        "message_id": appended.json["items"][0]["id"],
        "checkpoint_id": "ck-alice",
    }


@pytest.fixture
def bob_world(api) -> dict[str, str]:
    """Bob's own agent, user and session, with the same metadata as alice's."""
    bob = api.as_("bob")
    agent = bob.post("/agents", {"name": "Bob's agent", "metadata": dict(META)})
    user = bob.post("/users", {"name": "Bob", "metadata": dict(META)})
    assert agent.status_code == 201 and user.status_code == 201
    session = bob.post("/sessions", {"agent_id": agent.json["id"], "user_id": user.json["id"], "metadata": dict(META)})
    assert session.status_code == 201, session.body
    return {"agent_id": agent.json["id"], "user_id": user.json["id"], "session_id": session.json["id"]}


# --- 1. authentication --------------------------------------------------------------------------------

BAD_AUTHORIZATION = {
    "missing": None,
    "wrong-key": "Bearer wrong-key",
    "basic": "Basic xxx",
    "empty-bearer": "Bearer ",
    "no-scheme": KEYS["alice"],
    "other-scheme": f"Token {KEYS['alice']}",
    "key-with-suffix": f"Bearer {KEYS['alice']}x",
    "stored-hash-as-key": "Bearer " + hashlib.sha256(KEYS["alice"].encode()).hexdigest(),
}


def _auth_headers(value: str | None) -> dict[str, str]:
    return {"Authorization": value} if value is not None else {}


@pytest.mark.parametrize("method,path,operation", ROUTES, ids=ROUTE_IDS)
def test_every_route_refuses_a_request_without_a_valid_key(api, table, world, method, path, operation):
    before = scan_all(table)
    for authorization in ("missing", "wrong-key", "basic"):
        response = api.request(
            method,
            fill(path, world),
            valid_body(operation, world),
            key=None,
            headers=_auth_headers(BAD_AUTHORIZATION[authorization]),
        )
        assert response.status_code == 401, (authorization, response.status_code, response.body[:300])
        assert_error(response, 401, "unauthorized")
        # RFC 6750: the scheme to use, and for a key that was sent, that it is not valid (issue 12, item 9)
        assert header(response, "WWW-Authenticate") == (
            'Bearer realm="sessions", error="invalid_token"'
            if authorization == "wrong-key"
            else 'Bearer realm="sessions"'
        )
    assert scan_all(table) == before


def test_post_agents_without_a_valid_key_creates_nothing(api, table, world):
    before_list, before = list_ids(api, "agents"), scan_all(table)
    for authorization, value in BAD_AUTHORIZATION.items():
        response = api.post("/agents", {"name": "Intruder"}, key=None, headers=_auth_headers(value))
        assert response.status_code == 401, (authorization, response.status_code, response.body[:300])
        assert_error(response, 401, "unauthorized")
    assert list_ids(api, "agents") == before_list
    assert list_ids(api.as_("bob"), "agents") == []
    assert scan_all(table) == before


def test_unknown_route_and_wrong_method_also_need_a_key(api, world):
    assert_error(api.get("/nope", key=None), 401, "unauthorized")
    assert_error(api.post(f"/agents/{world['agent_id']}", {"name": "x"}, key=None), 401, "unauthorized")


def test_keys_are_stored_only_hashed(api, table, world, bob_world):
    items = scan_all(table)
    everything = [s for item in items for s in strings_in(item)]
    assert len(items) > 10
    for developer, key in KEYS.items():
        assert not [s for s in everything if key in s], f"the raw key of {developer} is in the table"
        assert any(hashlib.sha256(key.encode()).hexdigest() in s for s in everything)


# --- 2. tenancy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,operation", ROUTES, ids=ROUTE_IDS)
def test_bob_walking_every_route_never_reaches_alice(api, table, world, request, method, path, operation):
    bob = api.as_("bob")
    before_view, before_items = alice_view(api, world), developer_items(table, "alice")
    alice_ids = set(world.values())
    plural = path.split("/")[1]

    if "{" in path:
        # alice's id answers exactly as an id that does not exist
        absent_ids = random_ids()
        response = bob.request(method, fill(path, world), valid_body(operation, world))
        absent = bob.request(method, fill(path, absent_ids), valid_body(operation, absent_ids))
        error = assert_error(response, 404, "not_found")
        assert normalized(error, world) == normalized(assert_error(absent, 404, "not_found"), absent_ids)
    elif operation.endswith(".list"):
        bob_world = request.getfixturevalue("bob_world")
        for query in (
            "",
            f"?metadata_filter={q(META)}",
            f"?metadata_filter={q({'db_uuid': '1234'})}&limit=1000",
            "?order=asc&sort_by=updated_at",
            "?offset=0&limit=1",
        ):
            assert list_ids(bob, plural, query) == [bob_world[f"{plural[:-1]}_id"]], query
        # ... while alice, with the same filter, does see hers: the filter would have matched.
        assert list_ids(api, plural, f"?metadata_filter={q(META)}") == [world[f"{plural[:-1]}_id"]]
    elif operation == "sessions.create":
        absent_ids = random_ids()
        response = bob.post("/sessions", valid_body(operation, world))
        absent = bob.post("/sessions", valid_body(operation, absent_ids))
        error = assert_error(response, 404, "not_found")
        assert normalized(error, world) == normalized(assert_error(absent, 404, "not_found"), absent_ids)
        assert list_ids(bob, "sessions") == []
        assert not developer_items(table, "bob")
    else:  # agents.create / users.create: bob gets one of his own; alice cannot see it
        created = bob.post(path, valid_body(operation, world))
        assert created.status_code == 201, created.body
        assert created.json["id"] not in alice_ids
        assert_error(api.get(f"/{plural}/{created.json['id']}"), 404, "not_found")
        assert created.json["id"] not in list_ids(api, plural)

    assert alice_view(api, world) == before_view
    assert developer_items(table, "alice") == before_items


def test_bob_cannot_start_a_session_on_alices_agent_or_user(api, table, world, bob_world):
    bob = api.as_("bob")
    before_bob, before_alice = developer_items(table, "bob"), developer_items(table, "alice")
    error = assert_error(bob.post("/sessions", {"agent_id": world["agent_id"], "situation": "s"}), 404, "not_found")
    assert [d["field"] for d in error["details"]] == ["agent_id"]
    # bob's own agent with alice's user: the user is as absent as a random one
    error = assert_error(
        bob.post("/sessions", {"agent_id": bob_world["agent_id"], "user_id": world["user_id"]}), 404, "not_found"
    )
    assert [d["field"] for d in error["details"]] == ["user_id"]
    assert developer_items(table, "bob") == before_bob
    assert developer_items(table, "alice") == before_alice
    assert list_ids(bob, "sessions") == [bob_world["session_id"]]


def test_bob_deleting_alices_agent_or_user_leaves_her_session(api, table, world):
    bob = api.as_("bob")
    before_view, before_items = alice_view(api, world), developer_items(table, "alice")
    for path in ("/agents/{agent_id}", "/users/{user_id}", "/sessions/{session_id}/history", "/sessions/{session_id}"):
        assert_error(bob.delete(fill(path, world)), 404, "not_found")
    assert list_ids(api, "sessions") == [world["session_id"]]
    assert len(api.get(f"/sessions/{world['session_id']}/history").json["items"]) == 2
    assert alice_view(api, world) == before_view
    assert developer_items(table, "alice") == before_items


# --- 3. errors ------------------------------------------------------------------------------------------

BODY_ROUTES = [(m, p, o) for m, p, o in ROUTES if o.rsplit(".", 1)[1] in BODY_OPERATIONS]

BAD_BODIES = {
    "malformed-json": '{"name": ',
    "trailing-garbage": '{"name": "a"} x',
    "json-array": '[{"name": "a"}]',
    "json-string": '"name"',
    "json-number": "1",
    "json-null": "null",
    "empty": None,
    "whitespace": "   \n",
    "invalid-utf8": b'{"name": "\xff\xfe"}',
    "latin1": '{"name": "caf\xe9"}'.encode("latin-1"),
    "lone-high-surrogate": '{"name": "\\ud800"}',
    "lone-low-surrogate": '{"name": "a", "metadata": {"k": "x\\udc00"}}',
    "surrogate-in-key": '{"name": "a", "metadata": {"\\ud800": 1}}',
    "nan": '{"name": "a", "metadata": {"x": NaN}}',
    "infinity": '{"name": "a", "metadata": {"x": Infinity}}',
    "minus-infinity": '{"name": "a", "metadata": {"x": -Infinity}}',
}


@pytest.mark.parametrize("method,path,operation", BODY_ROUTES, ids=[f"{m} {p}" for m, p, _ in BODY_ROUTES])
def test_unreadable_bodies_are_400(api, table, world, method, path, operation):
    before, before_lists = scan_all(table), [list_ids(api, p) for p in ("agents", "users", "sessions")]
    for case, raw in BAD_BODIES.items():
        response = api.request(method, fill(path, world), raw=raw)
        assert response.status_code == 400, (case, response.status_code, response.body[:300])
        assert_error(response, 400, "bad_request")
    assert scan_all(table) == before
    assert [list_ids(api, p) for p in ("agents", "users", "sessions")] == before_lists


OPTIONAL_BODY_ROUTES = [("POST", "/sessions/{session_id}/end"), ("POST", "/sessions/{session_id}/fork")]


@pytest.mark.parametrize("method,path", OPTIONAL_BODY_ROUTES, ids=["end", "fork"])
def test_routes_whose_fields_are_all_optional_hold_the_body_rules_and_take_no_body_as_empty(
    api, table, world, method, path
):
    """Issue 20: /end took any body ({"foo": 1}, "not json") and /fork refused none at all. Both
    now read a body as every route does, and no body at all means {}."""
    before = scan_all(table)
    for case, raw in BAD_BODIES.items():
        if case == "empty":
            continue
        response = api.request(method, fill(path, world), raw=raw)
        assert_error(response, 400, "bad_request")
    unknown = api.request(method, fill(path, world), {"foo": 1})
    assert_error(unknown, 422, "validation_error")
    assert "foo" in {d["field"] for d in unknown.json["error"]["details"]}, unknown.json
    assert scan_all(table) == before  # nothing changed: the session is still active, no fork made
    assert api.get(fill("/sessions/{session_id}", world)).json["status"] == "active"
    empty = api.request(method, fill(path, world), raw=b"")
    assert empty.status_code in (200, 201), empty.body
    assert api.request(method, fill(path, world), {}).status_code in (200, 201)


def test_a_valid_surrogate_pair_is_accepted(api):
    created = api.post("/agents", raw='{"name": "\\ud83d\\ude00"}')
    assert created.status_code == 201, created.body
    assert api.get(f"/agents/{created.json['id']}").json["name"] == "\U0001f600"


def test_unknown_route_is_404_in_our_shape(api, table, world):
    before = scan_all(table)
    for method, path in [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("DELETE", "/nope"),
        ("GET", "/agent"),
        ("PUT", "/Agents"),
        ("PATCH", "/history"),
    ]:
        response = api.request(method, path, {"name": "x"})
        assert response.status_code == 404, (method, path, response.status_code, response.body[:300])
        assert_error(response, 404, "not_found")
    assert scan_all(table) == before


WRONG_METHODS = [
    ("POST", "/agents/{agent_id}"),
    ("POST", "/users/{user_id}"),
    ("POST", "/sessions/{session_id}"),
    ("DELETE", "/agents"),
    ("PUT", "/users"),
    ("PATCH", "/sessions"),
    ("PUT", "/sessions/{session_id}/history"),
    ("PATCH", "/sessions/{session_id}/history"),
]


def test_wrong_method_is_405_in_our_shape(api, table, world):
    before, before_view = scan_all(table), alice_view(api, world)
    for method, path in WRONG_METHODS:
        response = api.request(method, fill(path, world), {"name": "x", "situation": "y"})
        assert response.status_code == 405, (method, path, response.status_code, response.body[:300])
        assert_error(response, 405, "method_not_allowed")
        allowed = {m for m, p, _ in ROUTES if p == path}
        assert {m.strip() for m in (header(response, "Allow") or "").split(",")} == allowed, (method, path)
    assert scan_all(table) == before
    assert alice_view(api, world) == before_view


VALIDATION_CASES = {
    "agent-wrong-types": (
        "POST",
        "/agents",
        {"name": 1, "about": True, "model": "", "metadata": []},
        {"name", "about", "model", "metadata"},
    ),
    "agent-missing-name": ("POST", "/agents", {"about": "x"}, {"name"}),
    "agent-unknown-field": ("POST", "/agents", {"name": "a", "nmae": "b"}, {"nmae"}),
    "agent-tool-malformed": (
        "POST",
        "/agents",
        {"name": "a", "tools": [{"type": "x"}]},
        {"tools.0.type", "tools.0.function"},
    ),
    "agent-put-missing": ("PUT", "/agents/{agent_id}", {}, {"name", "about"}),
    "agent-patch-immutable": ("PATCH", "/agents/{agent_id}", {"id": "x", "created_at": "y"}, {"id", "created_at"}),
    "user-wrong-types": ("POST", "/users", {"name": [], "about": {}, "metadata": "m"}, {"name", "about", "metadata"}),
    "user-put-missing": ("PUT", "/users/{user_id}", {"name": "a"}, {"about"}),
    "session-missing-agent": ("POST", "/sessions", {"situation": "s"}, {"agent_id"}),
    "session-bad-agent-id": ("POST", "/sessions", {"agent_id": "not-a-uuid"}, {"agent_id"}),
    "session-bad-user-id": ("POST", "/sessions", {"agent_id": "{agent_id}", "user_id": "nope"}, {"user_id"}),
    "session-wrong-types": (
        "POST",
        "/sessions",
        {"agent_id": "{agent_id}", "render_templates": "true", "token_budget": "5", "context_overflow": "drop"},
        {"render_templates", "token_budget", "context_overflow"},
    ),
    "session-patch-immutable": (
        "PATCH",
        "/sessions/{session_id}",
        {"agent_id": "{agent_id}", "summary": "s"},
        {"agent_id", "summary"},
    ),
    "session-put-missing": ("PUT", "/sessions/{session_id}", {"metadata": {}}, {"situation"}),
    "history-bad-message": (
        "POST",
        "/sessions/{session_id}/history",
        {"messages": [{"role": "robot", "content": 1}]},
        {"messages.0.role", "messages.0.content"},
    ),
    "history-empty": ("POST", "/sessions/{session_id}/history", {"messages": []}, {"messages"}),
}


def test_validation_errors_are_422_naming_each_field(api, table, world):
    before = scan_all(table)
    for case, (method, path, body, fields) in VALIDATION_CASES.items():
        body = json.loads(json.dumps(body).replace("{agent_id}", world["agent_id"]))
        response = api.request(method, fill(path, world), body)
        assert response.status_code == 422, (case, response.status_code, response.body[:300])
        error = assert_error(response, 422, "validation_error")
        assert {detail["field"] for detail in error["details"]} == fields, (case, error)
        for detail in error["details"]:
            assert isinstance(detail["message"], str) and detail["message"], (case, detail)
            assert isinstance(detail.get("type"), str), (case, detail)
    assert scan_all(table) == before


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "0", "%20", "x" * 300, "12345678-1234-4234-8234-1234567890abX"])
def test_non_uuid_path_ids_are_404(api, table, world, bad_id):
    before = scan_all(table)
    for method, path, operation in PER_ID_ROUTES:
        ids = {**world, **{name: bad_id for name in world if "{" + name + "}" in path}}
        response = api.request(method, fill(path, ids), valid_body(operation, world))
        assert response.status_code == 404, (method, path, response.status_code, response.body[:300])
        assert_error(response, 404, "not_found")
    assert scan_all(table) == before


def test_body_over_one_mib_is_413_on_every_body_route(api, table, world):
    before = scan_all(table)
    raw = '{"name": "' + "a" * (jsonio.MAX_BODY_BYTES + 1) + '"}'
    for method, path, _ in BODY_ROUTES:
        response = api.request(method, fill(path, world), raw=raw)
        assert response.status_code == 413, (method, path, response.status_code, response.body[:300])
        assert_error(response, 413, "payload_too_large")
    assert scan_all(table) == before


def test_body_of_exactly_one_mib_is_read(api, table):
    """The limit is inclusive: a body of exactly 1 MiB is parsed (and its name is too long: 422)."""
    before = scan_all(table)
    head, tail = '{"name": "', '"}'
    raw = head + "a" * (jsonio.MAX_BODY_BYTES - len(head) - len(tail)) + tail
    assert len(raw.encode()) == jsonio.MAX_BODY_BYTES
    error = assert_error(api.post("/agents", raw=raw), 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["name"]
    assert scan_all(table) == before


def test_situation_over_64_kib_is_422(api, table, world):
    before, before_view = scan_all(table), alice_view(api, world)
    for method, path in [("POST", "/sessions"), ("PUT", "/sessions/{session_id}"), ("PATCH", "/sessions/{session_id}")]:
        extra = {"agent_id": world["agent_id"]} if method == "POST" else {}
        for situation in ("s" * (64 * 1024 + 1), "\u00e9" * (32 * 1024 + 1)):  # bytes count, not characters
            response = api.request(method, fill(path, world), {"situation": situation, **extra})
            assert response.status_code == 422, (method, len(situation), response.status_code)
            error = assert_error(response, 422, "validation_error")
            assert [d["field"] for d in error["details"]] == ["situation"]
    assert scan_all(table) == before
    assert alice_view(api, world) == before_view
    # exactly 64 KiB of UTF-8 is accepted
    response = api.patch(f"/sessions/{world['session_id']}", {"situation": "\u00e9" * (32 * 1024)})
    assert response.status_code == 200, response.body[:300]


BAD_QUERIES = [
    "limit=0",
    "limit=-1",
    "limit=1001",
    "limit=abc",
    "limit=1.5",
    "limit=",
    "offset=-1",
    "offset=x",
    "sort_by=name",
    "order=up",
    "unknown=1",
    "metadata_filter=" + q("[1]"),
    "metadata_filter=" + q("{bad"),
    "metadata_filter=" + q('{"x": NaN}'),
    "metadata_filter=" + q('{"x": "\\ud800"}'),
    # issue 12, item 7: int() takes these, so they were answered as 3, 5 and 10
    "limit=" + q("\u0663"),
    "limit=" + q("\uff15"),
    "limit=1_0",
    "offset=" + q("\u0661"),
    "limit=1&limit=2",
    "order=asc&order=desc",
]


@pytest.mark.parametrize(
    "query, field, kind",
    [
        ('{"a": 1e400}', "metadata_filter.a", "number_not_storable"),
        ('{"a": [1, 12345678901234567890123456789012345678901]}', "metadata_filter.a.1", "number_not_storable"),
        ('{"a": {"": 1}}', "metadata_filter.a", "key_length"),
        ('{"%s": 1}' % ("k" * 257), "metadata_filter", "key_length"),
    ],
)
def test_a_metadata_filter_is_held_to_the_rules_of_metadata(api, world, query, field, kind):
    """The same number rules as bodies: 1e400 in a body is a 422, and was a silent empty list here."""
    error = assert_error(api.get("/sessions?metadata_filter=" + q(query)), 400, "bad_request")
    assert [(d["field"], d["type"]) for d in error["details"]] == [(field, kind)], error
    assert "metadata_filter" in error["message"]


def test_a_route_without_query_parameters_says_so(api, world):
    error = assert_error(api.get(f"{fill('/sessions/{session_id}/context', world)}?limit=1"), 400, "bad_request")
    assert error["message"] == "unknown query parameter limit; this route takes no query parameters"


def test_a_query_parameter_given_twice_is_400_not_the_last_one(api, world):
    error = assert_error(api.get("/sessions?limit=1&limit=2"), 400, "bad_request")
    assert "limit given more than once" in error["message"]


def test_bad_query_parameters_are_400(api, world):
    # (the history route knows only limit and offset: the others are unknown there, still a 400)
    for path in ["/agents", "/users", "/sessions", "/sessions/{session_id}/history"]:
        for query in BAD_QUERIES:
            response = api.get(f"{fill(path, world)}?{query}")
            assert response.status_code == 400, (path, query, response.status_code, response.body[:300])
            assert_error(response, 400, "bad_request")


# --- 4. no 500s -----------------------------------------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


WRONG_STRING = [1, -1.5, True, False, [], {}, ["a"], {"a": "b"}]
WRONG_OBJECT = [[], "x", 1, 2.5, True, ["a"], {"": 1}, {"k" * 257: 1}, _nested(40), {"x": "y" * (64 * 1024)}]
WRONG_BOOL = ["true", "false", 1, 0, 1.0, [], {}, "yes"]
WRONG_INT = ["5", 5.5, 1.0, True, False, 0, -1, -(2**63), [], {}, "1e3"]
WRONG_ID = [1, True, [], {}, "", "not-a-uuid", 1.5, ["x"]]
WRONG_FIELDS: dict[str, dict[str, list[Any]]] = {
    "agents": {
        "name": WRONG_STRING + ["n" * 257],
        "about": WRONG_STRING,
        "model": WRONG_STRING + [""],
        "instructions": [1, True, {}, [1], [None], [[]], {"a": 1}],
        "default_settings": WRONG_OBJECT,
        "metadata": WRONG_OBJECT,
        "tools": ["x", 1, {}, [1], [{}], True],
        "docs": ["x", {}, [{}]],
        "id": ["x"],
        "created_at": ["2020-01-01T00:00:00Z"],
        "bogus": [1],
    },
    "users": {
        "name": WRONG_STRING,
        "about": WRONG_STRING,
        "metadata": WRONG_OBJECT,
        "docs": ["x", {}, [{}]],
        "updated_at": ["x"],
        "bogus": [None],
    },
    "sessions": {
        "agent_id": WRONG_ID,
        "user_id": WRONG_ID,
        "situation": WRONG_STRING,
        "metadata": WRONG_OBJECT,
        "render_templates": WRONG_BOOL,
        "token_budget": WRONG_INT,
        "context_overflow": ["", "TRUNCATE", "drop", 1, True, [], {}],
        "summary": [1],
        "bogus": [[]],
    },
}


def _base_body(plural: str, op: str, world: dict[str, str]) -> dict[str, Any]:
    if op == "patch":
        return {}
    if plural == "sessions":
        return {"agent_id": world["agent_id"], "situation": "s"} if op == "create" else {"situation": "s"}
    return {"name": "n", "about": "a"}


@pytest.mark.parametrize("op", ["create", "patch", "put"])
@pytest.mark.parametrize("plural", ["agents", "users", "sessions"])
def test_wrongly_typed_fields_are_4xx_never_500(api, table, world, plural, op):
    method, path = {
        "create": ("POST", f"/{plural}"),
        "patch": ("PATCH", f"/{plural}/{{{plural[:-1]}_id}}"),
        "put": ("PUT", f"/{plural}/{{{plural[:-1]}_id}}"),
    }[op]
    before = scan_all(table)
    for field, values in WRONG_FIELDS[plural].items():
        for value in values:
            body = {**_base_body(plural, op, world), field: value}
            response = api.request(method, fill(path, world), body)
            assert 400 <= response.status_code < 500, (
                method,
                path,
                field,
                value,
                response.status_code,
                response.body[:300],
            )
            assert_4xx(response)
    assert scan_all(table) == before


def test_wrongly_typed_history_messages_are_4xx(api, table, world):
    before = scan_all(table)
    path = f"/sessions/{world['session_id']}/history"
    for body in (
        {"messages": "hi"},
        {"messages": {}},
        {"messages": [1]},
        {"messages": [[]]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": None}]},
        {"messages": [{"role": "user", "content": "x", "name": 1}]},
        {"messages": [{"role": "user", "content": "x", "extra": 1}]},
        {"messages": [{"role": "user", "content": "x" * (64 * 1024 + 1)}]},
        {"messages": [{"role": "user", "content": "x"}] * 51},
        {"messages": None},
        {},
        {"message": []},
    ):
        assert_4xx(api.post(path, body))
    assert scan_all(table) == before


@pytest.mark.parametrize("value", [2**63, 10**38 - 1], ids=["2**63", "10**38-1"])
def test_large_but_storable_token_budget_is_kept(api, world, value):
    response = api.patch(f"/sessions/{world['session_id']}", {"token_budget": value})
    assert response.status_code < 500, response.body
    if response.status_code == 200:
        assert api.get(f"/sessions/{world['session_id']}").json["token_budget"] == value
    else:
        assert_4xx(response)


# Numbers DynamoDB cannot hold (> 38 significant digits, or beyond 1E+125 / 1E-130) would blow up
# in boto3's serializer (decimal.Rounded / Inexact / Overflow / Underflow) if validation let them by.
UNSTORABLE_NUMBERS = [
    ("POST", "/sessions", '{"agent_id": "{agent_id}", "token_budget": %d}' % 10**40, "token_budget 10**40 create"),
    ("PATCH", "/sessions/{session_id}", '{"token_budget": %d}' % 2**200, "token_budget 2**200 patch"),
    ("PUT", "/sessions/{session_id}", '{"situation": "s", "token_budget": %d}' % 10**40, "token_budget 10**40 put"),
    ("POST", "/users", '{"metadata": {"x": %d}}' % 10**40, "metadata int 10**40"),
    ("PATCH", "/users/{user_id}", '{"metadata": {"x": 1e400}}', "metadata 1e400"),
    ("PUT", "/users/{user_id}", '{"name": "n", "about": "a", "metadata": {"x": 1e-200}}', "metadata 1e-200"),
    (
        "POST",
        "/agents",
        '{"name": "a", "default_settings": {"t": 0.123456789012345678901234567890123456789012}}',
        "default_settings 42-digit fraction",
    ),
    (
        "PATCH",
        "/sessions/{session_id}",
        '{"metadata": {"deep": [{"x": 99999999999999999999999999999999999999999}]}}',
        "nested metadata 41-digit int",
    ),
]


@pytest.mark.parametrize("method,path,raw", [c[:3] for c in UNSTORABLE_NUMBERS], ids=[c[3] for c in UNSTORABLE_NUMBERS])
def test_numbers_dynamodb_cannot_store_are_4xx(api, table, world, method, path, raw):
    before = scan_all(table)
    response = api.request(method, fill(path, world), raw=raw.replace("{agent_id}", world["agent_id"]))
    assert_4xx(response)
    assert scan_all(table) == before


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/users", {"metadata": {"a": {"": 1}}}),
        ("PATCH", "/agents/{agent_id}", {"default_settings": {"a": [{"": 1}]}}),
        ("PATCH", "/sessions/{session_id}", {"metadata": {"a": {"b": {"": "x"}}}}),
    ],
    ids=["user-create-metadata", "agent-patch-default_settings", "session-patch-metadata"],
)
def test_nested_empty_metadata_key_is_422(api, table, world, method, path, body):
    before = scan_all(table)
    assert_error(api.request(method, fill(path, world), body), 422, "validation_error")
    assert scan_all(table) == before


@pytest.mark.parametrize(
    "method,path,raw",
    [
        ("POST", "/agents", "[" * 100_000 + "]" * 100_000),
        ("POST", "/agents", '{"name": "a", "metadata": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"),
        ("PATCH", "/users/{user_id}", '{"metadata": ' + '{"k": ' * 900 + "1" + "}" * 900 + "}"),
        ("GET", "/agents?metadata_filter=" + q("[" * 5000 + "]" * 5000), None),
    ],
    ids=["body-100k-arrays", "metadata-100k-arrays", "metadata-900-objects", "metadata_filter-5k-arrays"],
)
def test_very_deeply_nested_json_is_4xx(api, table, world, method, path, raw):
    before = scan_all(table)
    assert_4xx(api.request(method, fill(path, world), raw=raw))
    assert scan_all(table) == before


# --- 5. internal failures ---------------------------------------------------------------------------------

SECRET = "secret-internal-detail"


def _boom(*args, **kwargs):
    raise RuntimeError(SECRET)


def _assert_internal_error(response) -> None:
    error = assert_error(response, 500, "internal_error")
    assert error["details"] == []
    assert SECRET not in response.body.decode("utf-8", "replace")
    assert "Traceback" not in response.body.decode("utf-8", "replace")
    assert not any(SECRET in str(v) for v in (response.headers or {}).values())


def test_failure_in_the_service_is_a_500_without_internals(api, world, monkeypatch):
    import chalicelib.rules.records

    monkeypatch.setattr(chalicelib.rules.records, "get", _boom)
    _assert_internal_error(api.get(f"/agents/{world['agent_id']}"))
    _assert_internal_error(api.get(f"/sessions/{world['session_id']}"))


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/users/{user_id}"),
        ("GET", "/sessions/{session_id}/history"),
        ("PATCH", "/agents/{agent_id}"),
        ("DELETE", "/sessions/{session_id}"),
    ],
)
def test_failure_in_the_store_is_a_500_without_internals(api, table, world, monkeypatch, method, path):
    monkeypatch.setattr(table, "get", _boom)
    _assert_internal_error(api.request(method, fill(path, world), {"name": "x"}))


def test_failure_while_authenticating_is_a_500_without_internals(api, table, world, monkeypatch):
    monkeypatch.setattr(table, "developer_for_key", _boom)
    _assert_internal_error(api.get("/agents"))
    _assert_internal_error(api.post("/agents", {"name": "x"}))


def test_failures_do_not_leak_the_exception_type_either(api, world, monkeypatch):
    import chalicelib.rules.lists

    def fail(*args, **kwargs):
        raise KeyError("pk")  # a programming error of the kind a typo causes

    monkeypatch.setattr(chalicelib.rules.lists, "list_records", fail)
    response = api.get("/agents")
    _assert_internal_error(response)
    assert not re.search(r"KeyError|'pk'", response.body.decode())
