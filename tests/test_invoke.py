"""Direct invocation (chalicelib/web/invoke.py) through chalice's own Lambda test client: every
operation, the same answers and errors as HTTP, the event's schema, and nothing written by a
refused event."""

from __future__ import annotations

import json
import pathlib

import jsonschema
import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

import app as app_module
from chalicelib.web import invoke, openapi
from chalicelib.web.operations import OPERATIONS
from conftest import ROUTES, scan_all

SCHEMA = json.loads((pathlib.Path(__file__).parent.parent / openapi.INVOKE_SCHEMA_PATH).read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


@pytest.fixture
def lambda_client(table):
    with Client(app_module.app) as client:
        yield client


def call(client, operation, developer="alice", valid=True, **params):
    """Invoke as the Lambda service would: the event and the answer go through JSON. A valid event
    is checked against the documented schema too."""
    event = json.loads(json.dumps({"operation": operation, "developer_id": developer, "params": params}))
    if valid:
        VALIDATOR.validate(event)
    answer = client.lambda_.invoke(invoke.FUNCTION_NAME, event).payload
    return json.loads(json.dumps(answer))


def http(api, method, path, body=None, headers=None):
    response = api.request(method, path, body, headers=headers)
    return response.status_code, response.json, response.headers


@pytest.fixture
def model(model):
    model.reply, model.usage = "hello back", (3, 2)
    return model


@pytest.fixture
def world(api, agent_id, user_id, session_id):
    appended = api.post(
        f"/sessions/{session_id}/history",
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    )
    message_id = appended.json["items"][0]["id"]
    assert (
        api.put(f"/sessions/{session_id}/checkpoints/c1", {"checkpoint": {"type": "t", "data": ""}}).status_code == 200
    )
    ids = {"agent_id": agent_id, "user_id": user_id, "session_id": session_id, "message_id": message_id}
    return {**ids, "checkpoint_id": "c1"}


# --- every operation ---------------------------------------------------------------------------------


# operation -> (params, how to check the effect over HTTP afterwards: (method, path, expected status))
def cases(w):
    a, u, s, m, c = w["agent_id"], w["user_id"], w["session_id"], w["message_id"], w["checkpoint_id"]
    return {
        "agents.create": ({"body": {"name": "Ivy", "about": "new"}}, None),
        "agents.list": ({"limit": 5, "metadata_filter": {}}, None),
        "agents.get": ({"agent_id": a}, None),
        "agents.replace": ({"agent_id": a, "body": {"name": "Sara II", "about": "coach"}}, ("GET", f"/agents/{a}")),
        "agents.patch": ({"agent_id": a, "body": {"about": "patched"}}, ("GET", f"/agents/{a}")),
        "agents.delete": ({"agent_id": a}, ("GET", f"/agents/{a}")),
        "users.create": ({"body": {"name": "Bo", "about": "another"}}, None),
        "users.list": ({"order": "asc"}, None),
        "users.get": ({"user_id": u}, None),
        "users.replace": ({"user_id": u, "body": {"name": "Ann II", "about": "x"}}, ("GET", f"/users/{u}")),
        "users.patch": ({"user_id": u, "body": {"metadata": {"tier": 2}}}, ("GET", f"/users/{u}")),
        "users.delete": ({"user_id": u}, ("GET", f"/users/{u}")),
        "sessions.create": ({"body": {"agent_id": a, "user_id": u, "situation": "new"}}, None),
        "sessions.list": ({"agent_id": a, "metadata_filter": {"db_uuid": "1234"}}, None),
        "sessions.get": ({"session_id": s}, None),
        "sessions.replace": ({"session_id": s, "body": {"situation": "redo"}}, ("GET", f"/sessions/{s}")),
        "sessions.patch": ({"session_id": s, "body": {"situation": "moved on"}}, ("GET", f"/sessions/{s}")),
        "sessions.delete": ({"session_id": s}, ("GET", f"/sessions/{s}")),
        "sessions.history.get": ({"session_id": s, "limit": 1, "order": "desc"}, None),
        "sessions.history.append": (
            {"session_id": s, "body": {"messages": [{"role": "user", "content": "more"}]}},
            ("GET", f"/sessions/{s}/history"),
        ),
        "sessions.history.delete": ({"session_id": s}, ("GET", f"/sessions/{s}/history")),
        "sessions.history.message.get": ({"session_id": s, "message_id": m}, None),
        "sessions.history.message.delete": (
            {"session_id": s, "message_id": m},
            ("GET", f"/sessions/{s}/history/{m}"),
        ),
        "sessions.fork": ({"session_id": s, "body": {"up_to": m}}, None),
        "sessions.checkpoints.list": ({"session_id": s, "limit": 5, "checkpoint_ns": ""}, None),
        "sessions.checkpoints.put": (
            {"session_id": s, "checkpoint_id": "c2", "body": {"checkpoint": {"type": "t", "data": "eA=="}}},
            ("GET", f"/sessions/{s}/checkpoints/c2"),
        ),
        "sessions.checkpoints.get": ({"session_id": s, "checkpoint_id": c}, None),
        "sessions.checkpoints.delete": (
            {"session_id": s, "checkpoint_id": c, "checkpoint_ns": ""},
            ("GET", f"/sessions/{s}/checkpoints/{c}"),
        ),
        "sessions.checkpoints.writes.put": (
            {
                "session_id": s,
                "checkpoint_id": c,
                "body": {"task_id": "t", "writes": [{"channel": "a", "idx": 0, "value": {"type": "t", "data": ""}}]},
            },
            ("GET", f"/sessions/{s}/checkpoints/{c}"),
        ),
        "sessions.end": ({"session_id": s}, ("GET", f"/sessions/{s}")),
        "sessions.context.get": ({"session_id": s}, None),
        "sessions.chat": (
            {"session_id": s, "body": {"messages": [{"role": "user", "content": "and?"}], "remember": True}},
            ("GET", f"/sessions/{s}/history"),
        ),
    }


def test_the_cases_cover_every_operation_and_every_route():
    fake = {"agent_id": "a", "user_id": "u", "session_id": "s", "message_id": "m", "checkpoint_id": "c"}
    assert set(cases(fake)) == set(OPERATIONS) == {name for _, _, name in ROUTES}


def _route(name):
    return next((method, path) for method, path, op in ROUTES if op == name)


def _http_path(path, params):
    return path.format(**{k: v for k, v in params.items() if k.endswith("_id") and "{" + k + "}" in path})


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_every_operation_answers_as_http_does(api, world, lambda_client, model, operation):
    params, effect = cases(world)[operation]
    method, path = _route(operation)
    path = _http_path(path, params)
    if method == "GET":
        # A read answers exactly what HTTP answers (for lists and pages: the same items in order).
        query = {
            k: (v if isinstance(v, str) else json.dumps(v))
            for k, v in params.items()
            if "{" + k + "}" not in _route(operation)[1]
        }
        from urllib.parse import urlencode

        expected_status, expected_body, _ = http(api, "GET", path + ("?" + urlencode(query) if query else ""))
        answer = call(lambda_client, operation, **params)
        assert (answer["status"], answer["body"]) == (
            expected_status,
            json.loads(json.dumps(expected_body, default=float)),
        )
        assert expected_status == OPERATIONS[operation].status
        return
    answer = call(lambda_client, operation, **params)
    assert answer["status"] == OPERATIONS[operation].status, answer
    if method == "POST" and operation.endswith("create"):
        created = answer["body"]["id"]
        status, stored, _ = http(api, "GET", f"{path}/{created}")
        assert status == 200 and all(stored[k] == v for k, v in params["body"].items())
    if effect is not None:
        status, seen, _ = http(api, *effect)
        if operation.endswith(".delete") and operation != "sessions.history.delete":
            assert status == 404
        elif operation == "sessions.history.delete":
            assert seen["items"] == []
        elif operation in ("sessions.history.append", "sessions.chat"):
            contents = [m["content"] for m in seen["items"]]
            assert contents[-1] == ("more" if operation.endswith("append") else "hello back")
        elif operation == "sessions.end":
            assert seen["status"] == "ended" and seen["ended_at"] == answer["body"]["ended_at"]
        elif operation == "sessions.checkpoints.writes.put":
            assert [(w["task_id"], w["channel"]) for w in seen["pending_writes"]] == [("t", "a")]
        elif operation == "sessions.checkpoints.put":
            assert seen["checkpoint"] == params["body"]["checkpoint"]
        else:
            body = params["body"]
            assert all(seen[k] == v for k, v in body.items()), (seen, body)


# --- the same errors as HTTP -------------------------------------------------------------------------


def test_errors_are_http_errors_field_for_field(api, world, lambda_client):
    s = world["session_id"]
    missing = "00000000-0000-4000-8000-000000000000"
    pairs = [
        (("sessions.get", {"session_id": missing}), ("GET", f"/sessions/{missing}", None, None)),
        (("sessions.get", {"session_id": "not-a-uuid"}), ("GET", "/sessions/not-a-uuid", None, None)),
        (("agents.create", {"body": {"name": 5}}), ("POST", "/agents", {"name": 5}, None)),
        (
            ("agents.create", {"body": {"name": "x", "surprise": 1}}),
            ("POST", "/agents", {"name": "x", "surprise": 1}, None),
        ),
        (("agents.list", {"limit": 0}), ("GET", "/agents?limit=0", None, None)),
        (("agents.list", {"colour": "red"}), ("GET", "/agents?colour=red", None, None)),
        (
            ("sessions.list", {"metadata_filter": "{not json"}),
            ("GET", "/sessions?metadata_filter={not json", None, None),
        ),
        (
            ("sessions.patch", {"session_id": s, "body": {"situation": "x"}, "if_match": '"99"'}),
            ("PATCH", f"/sessions/{s}", {"situation": "x"}, {"If-Match": '"99"'}),
        ),
        (
            ("sessions.history.get", {"session_id": s, "cursor": "forged.cursor"}),
            ("GET", f"/sessions/{s}/history?cursor=forged.cursor", None, None),
        ),
        (
            ("sessions.chat", {"session_id": s, "body": {"messages": [{"role": "user", "content": "x"}]}}),
            ("POST", f"/sessions/{s}/chat", {"messages": [{"role": "user", "content": "x"}]}, None),
        ),
    ]
    for (operation, params), (method, path, body, headers) in pairs:
        expected_status, expected_body, expected_headers = http(api, method, path, body, headers)
        answer = call(lambda_client, operation, valid=False, **params)
        assert expected_status >= 400, (operation, expected_body)
        assert (answer["status"], answer["body"]) == (expected_status, expected_body), operation
        for header in ("Retry-After",):
            assert answer["headers"].get(header) == expected_headers.get(header)


def test_a_body_over_the_limit_is_a_413_as_over_http(lambda_client, table):
    before = scan_all(table)
    answer = call(lambda_client, "agents.create", valid=False, body={"name": "x", "about": "y" * (2 * 1024 * 1024)})
    assert answer["status"] == 413 and answer["body"]["error"]["code"] == "payload_too_large"
    assert scan_all(table) == before


def test_if_match_and_etag_work_as_over_http(lambda_client, world):
    s = world["session_id"]
    read = call(lambda_client, "sessions.get", session_id=s)
    etag = read["headers"]["ETag"]
    changed = call(lambda_client, "sessions.patch", session_id=s, if_match=etag, body={"situation": "v2"})
    assert changed["status"] == 200 and changed["headers"]["ETag"] != etag
    stale = call(lambda_client, "sessions.patch", session_id=s, if_match=etag, body={"situation": "v3"})
    assert stale["status"] == 412
    assert call(lambda_client, "sessions.get", session_id=s)["body"]["situation"] == "v2"


def test_an_idempotency_key_replays_instead_of_creating_twice(lambda_client, table):
    first = call(lambda_client, "users.create", idempotency_key="k-1", body={"name": "Once"})
    again = call(lambda_client, "users.create", idempotency_key="k-1", body={"name": "Once"})
    assert first["status"] == again["status"] == 201
    assert again["body"] == first["body"] and again["headers"].get("Idempotent-Replayed") == "true"
    listed = call(lambda_client, "users.list")["body"]["items"]
    assert [u["name"] for u in listed].count("Once") == 1


def test_the_developer_named_is_the_only_one_reached(lambda_client, world):
    s = world["session_id"]
    assert call(lambda_client, "sessions.get", developer="bob", session_id=s)["status"] == 404
    assert call(lambda_client, "sessions.list", developer="bob")["body"]["items"] == []
    assert call(lambda_client, "sessions.delete", developer="bob", session_id=s)["status"] == 404
    assert call(lambda_client, "sessions.get", session_id=s)["status"] == 200


def test_numbers_are_kept_exactly_where_json_allows(lambda_client, api):
    big = 123456789012345678901234567890
    created = call(lambda_client, "users.create", body={"name": "N", "metadata": {"big": big, "tenth": 0.1}})
    user = created["body"]["id"]
    raw = api.get(f"/users/{user}").body.decode()
    assert '"big":123456789012345678901234567890' in raw.replace(" ", "") and '"tenth":0.1' in raw.replace(" ", "")
    got = call(lambda_client, "users.get", user_id=user)["body"]["metadata"]
    assert got == {"big": big, "tenth": 0.1} and isinstance(got["big"], int)


# --- the event itself ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event,message",
    [
        ([1, 2], "event must be a JSON object"),
        ({"operation": "agents.list", "developer_id": "alice", "extra": 1}, "unknown event member(s): extra"),
        ({"developer_id": "alice"}, "operation must be one of"),
        ({"operation": "agents.drop", "developer_id": "alice"}, "operation must be one of"),
        ({"operation": "agents.list"}, "developer_id must be"),
        ({"operation": "agents.list", "developer_id": "al ice"}, "developer_id must be"),
        ({"operation": "agents.list", "developer_id": "x" * 65}, "developer_id must be"),
        ({"operation": "agents.list", "developer_id": "alice", "params": []}, "params must be a JSON object"),
        ({"operation": "agents.get", "developer_id": "alice", "params": {}}, "params.agent_id is required"),
        (
            {"operation": "agents.get", "developer_id": "alice", "params": {"agent_id": 7}},
            "params.agent_id is required",
        ),
        ({"operation": "agents.list", "developer_id": "alice", "params": {"body": {}}}, "agents.list takes no body"),
        ({"operation": "agents.create", "developer_id": "alice", "params": {}}, "request body is empty"),
        ({"operation": "agents.create", "developer_id": "alice", "params": {"body": [1]}}, "must be a JSON object"),
        (
            {
                "operation": "agents.patch",
                "developer_id": "alice",
                "params": {"agent_id": "00000000-0000-4000-8000-000000000000", "body": {}, "if_match": 3},
            },
            "params.if_match must be a string",
        ),
        ({"operation": "agents.list", "developer_id": "alice", "params": {"limit": None, "offset": [None]}}, "unknown"),
    ],
)
def test_a_malformed_event_is_a_400_that_writes_nothing(lambda_client, table, event, message):
    before = scan_all(table)
    answer = lambda_client.lambda_.invoke(invoke.FUNCTION_NAME, event).payload
    assert answer["status"] == 400 and answer["body"]["error"]["code"] == "bad_request", answer
    assert message in answer["body"]["error"]["message"] or message == "unknown"
    assert scan_all(table) == before
    if isinstance(event, dict) and message != "unknown":
        assert not VALIDATOR.is_valid(event) or message in ("request body is empty",)


def test_failures_answer_500_or_503_without_internals(lambda_client, world, monkeypatch, table):
    import chalicelib.rules.records

    def boom(*args, **kwargs):
        raise RuntimeError("secret-internal-detail")

    real_get = chalicelib.rules.records.get
    monkeypatch.setattr(chalicelib.rules.records, "get", boom)
    answer = call(lambda_client, "agents.get", agent_id=world["agent_id"])
    assert answer["status"] == 500 and answer["body"]["error"]["code"] == "internal_error"
    assert "secret" not in json.dumps(answer)
    monkeypatch.setattr(chalicelib.rules.records, "get", real_get)

    def throttled(*args, **kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Query")

    monkeypatch.setattr(table.client, "get_item", throttled)  # DynamoDB throttles the read
    answer = call(lambda_client, "users.get", user_id=world["user_id"])
    assert answer["status"] == 503 and answer["headers"]["Retry-After"] == "1"
    assert answer["body"]["error"]["code"] == "service_unavailable"


# --- the documented schema -----------------------------------------------------------------------------


def test_the_schema_in_docs_is_the_one_the_code_generates():
    assert SCHEMA == openapi.invoke_event_schema(), (
        "docs/invoke-event.schema.json is stale: run `python -m chalicelib.web.openapi`"
    )
    assert set(SCHEMA["properties"]["operation"]["enum"]) == set(OPERATIONS)


def test_the_schema_refuses_what_the_handler_refuses():
    assert not VALIDATOR.is_valid({"operation": "sessions.get", "developer_id": "a", "params": {}})
    assert not VALIDATOR.is_valid({"operation": "agents.list", "developer_id": "a", "params": {"colour": "red"}})
    assert VALIDATOR.is_valid({"operation": "agents.list", "developer_id": "a", "params": {"limit": "5"}})
    assert VALIDATOR.is_valid({"operation": "agents.create", "developer_id": "a", "params": {"body": {"name": "x"}}})


def test_every_deployed_handler_string_names_a_function_of_its_module(lambda_client, table):
    """Lambda calls `<module>.<attribute>` from the handler string chalice deploys, not the name
    chalice's test client looks up; so resolve each one as Lambda does, and call it."""
    import importlib

    from chalicelib.web import stream

    functions = {function.name: function for function in app_module.app.pure_lambda_functions}
    assert set(functions) == {invoke.FUNCTION_NAME, stream.FUNCTION_NAME}
    handlers = {}
    for name, function in functions.items():
        module, attribute = function.handler_string.rsplit(".", 1)
        handlers[name] = getattr(importlib.import_module(module), attribute)
    answer = handlers[invoke.FUNCTION_NAME]({"operation": "users.list", "developer_id": "alice"}, None)
    assert answer["status"] == 200 and answer["body"]["items"] == []
    # the stream's function takes a DynamoDB Streams batch (here: a change that starts nothing)
    batch = {"Records": [{"eventName": "MODIFY", "dynamodb": {"Keys": {"pk": {"S": "x"}, "sk": {"S": "y"}}}}]}
    assert handlers[stream.FUNCTION_NAME](batch, None) == {"started": 0}
