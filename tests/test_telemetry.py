"""One JSON line per request (chalicelib/shared/telemetry.py): what it says, that it is valid CloudWatch
embedded metric format, that it counts the DynamoDB calls really made and never carries a key."""

from __future__ import annotations

import io
import json

import pytest
from chalice.test import Client

import app as app_module
from chalicelib import store as store_module
from chalicelib.shared import telemetry
from chalicelib.web import invoke
from conftest import KEYS, InterceptedClient


@pytest.fixture
def lines():
    """The lines written while the test runs, parsed."""
    stream = io.StringIO()
    with telemetry.capture(stream):
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def counted(table):
    """The store's client, counting the calls it is really asked to make."""
    made: list[str] = []

    def around(name, run):
        made.append(name)
        return run()

    store_module.use_store(store_module.Store(InterceptedClient(table.client, around), table.table))
    return made


def assert_valid_emf(line):
    """What CloudWatch needs to extract the metrics (the EMF specification)."""
    meta = line["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    (directive,) = meta["CloudWatchMetrics"]
    assert directive["Namespace"]
    for dimension_set in directive["Dimensions"]:
        assert all(isinstance(line[name], str) and line[name] for name in dimension_set)
    names = {metric["Name"] for metric in directive["Metrics"]}
    assert names == {"requests", "errors", "client_errors", "latency"}
    assert all(isinstance(line[name], (int, float)) for name in names)


def test_a_request_writes_one_line_with_what_it_did(api, session_id, lines, counted):
    response = api.get(f"/sessions/{session_id}/history?limit=5")
    assert response.status_code == 200
    (line,) = lines()
    assert line["request_id"] == response.headers["X-Request-Id"]
    assert line["via"] == "http"
    assert line["route"] == "GET /sessions/{session_id}/history"
    assert line["operation"] == "sessions.history.get"
    assert line["developer_id"] == "alice"
    assert (line["status"], line["error_code"], line["level"]) == (200, None, "INFO")
    assert line["dynamodb_calls"] == len(counted) >= 2  # the key, the session, the page
    assert (line["requests"], line["errors"], line["client_errors"]) == (1, 0, 0)
    assert line["latency"] > 0
    assert_valid_emf(line)


def test_each_request_counts_only_its_own_calls(api, agent_id, lines, counted):
    api.get(f"/agents/{agent_id}")
    first = len(counted)
    api.patch(f"/agents/{agent_id}", {"about": "changed"})
    first_line, second_line = lines()
    assert first_line["dynamodb_calls"] == first
    assert second_line["dynamodb_calls"] == len(counted) - first


def test_refusals_are_client_errors_and_bugs_are_errors(api, agent_id, lines, monkeypatch):
    api.get("/agents", key="not-a-key")
    api.get("/nothing")
    api.post("/agents", {"name": 5})
    import chalicelib.rules.records

    monkeypatch.setattr(chalicelib.rules.records, "get", lambda *a, **k: 1 / 0)
    api.get(f"/agents/{agent_id}")
    unauthorized, unknown, invalid, broken = lines()
    assert (unauthorized["status"], unauthorized["error_code"], unauthorized["developer_id"]) == (
        401,
        "unauthorized",
        None,
    )
    assert (unknown["status"], unknown["operation"], unknown["developer_id"]) == (404, "unknown", "alice")
    assert (invalid["status"], invalid["error_code"], invalid["operation"]) == (
        422,
        "validation_error",
        "agents.create",
    )
    for line in (unauthorized, unknown, invalid):
        assert (line["client_errors"], line["errors"], line["level"]) == (1, 0, "INFO")
    assert (broken["status"], broken["errors"], broken["client_errors"], broken["level"]) == (500, 1, 0, "ERROR")
    assert broken["error_code"] == "internal_error"
    for line in (unauthorized, unknown, invalid, broken):
        assert_valid_emf(line)


def test_keys_never_reach_the_lines(api, agent_id, lines):
    api.get(f"/agents/{agent_id}")
    api.get("/agents", key="sk_wrong_key_that_must_not_be_logged")
    written = json.dumps(lines())
    assert KEYS["alice"] not in written and "sk_wrong_key" not in written


def test_an_invocation_writes_its_line_too(table, lines, counted):
    with Client(app_module.app) as client:
        answer = client.lambda_.invoke(
            invoke.FUNCTION_NAME,
            {"operation": "users.create", "developer_id": "bob", "params": {"body": {"name": "Zed"}}},
        ).payload
        client.lambda_.invoke(invoke.FUNCTION_NAME, {"operation": "users.create", "developer_id": "bob"})
    created, refused = lines()
    assert created["request_id"] == answer["request_id"]
    assert (created["via"], created["route"], created["operation"], created["developer_id"]) == (
        "invoke",
        None,
        "users.create",
        "bob",
    )
    assert created["status"] == 201 and created["dynamodb_calls"] == len(counted) == 1
    assert (refused["status"], refused["error_code"], refused["dynamodb_calls"]) == (400, "bad_request", 0)
    assert_valid_emf(created)
    assert_valid_emf(refused)


def test_the_namespace_comes_from_the_environment(api, lines, monkeypatch):
    monkeypatch.setenv(telemetry.NAMESPACE_VARIABLE, "Acme/Sessions")
    api.get("/agents")
    (line,) = lines()
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Acme/Sessions"


def test_lines_go_to_stdout_by_default(api, capsys):
    api.get("/agents")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and json.loads(out[0])["operation"] == "agents.list"


def test_an_invocations_error_log_carries_its_request_id(table, monkeypatch, caplog):
    import logging

    import chalicelib.rules.records

    monkeypatch.setattr(chalicelib.rules.records, "get", lambda *a, **k: 1 / 0)
    with Client(app_module.app) as client, caplog.at_level(logging.ERROR, logger="sessions"):
        answer = client.lambda_.invoke(
            invoke.FUNCTION_NAME, {"operation": "users.get", "developer_id": "bob", "params": {"user_id": "x"}}
        ).payload
    assert answer["status"] == 500
    logged = [r for r in caplog.records if r.name == "sessions" and r.levelno >= logging.ERROR]
    assert logged and {r.request_id for r in logged} == {answer["request_id"]} and answer["request_id"] != "-"
