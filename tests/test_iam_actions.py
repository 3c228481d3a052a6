"""The Lambda role's DynamoDB grant (infra/stack.py) is exactly iam.RUNTIME_IAM_ACTIONS: every
DynamoDB call a broad run of the API makes needs only those actions, and each of them is needed.

Every call is recorded below botocore's client (so no client the request path could make is
missed) and mapped to the IAM actions that authorize it: a TransactWriteItems needs no action of
its own but one per kind of item in it (Put -> PutItem, Update -> UpdateItem, ...).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from botocore.client import BaseClient

from chalicelib.store import iam

TRANSACT_WRITE_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_actions(operation: str, params: dict[str, Any]) -> set[str]:
    if operation == "TransactWriteItems":
        return {f"dynamodb:{TRANSACT_WRITE_ITEMS[kind]}" for item in params["TransactItems"] for kind in item}
    if operation == "TransactGetItems":
        return {"dynamodb:GetItem"}
    return {f"dynamodb:{operation}"}


@pytest.fixture
def used(table):
    """The IAM actions of every DynamoDB call made while the test (and the fixtures it names
    after this one) runs, counted; the table and API keys made before it are an operator's work."""
    counts: Counter[str] = Counter()
    real = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            counts.update(iam_actions(operation, params))
        return real(client, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", recording)
        yield counts


@pytest.fixture
def model(model):
    model.summary = "S"
    return model


def ok(answer, status: int = 200):
    assert answer.status_code == status, answer.json
    return answer.json


def exercise(api, agent_id: str, session_id: str) -> None:
    """Every route family once or more: creates (with Idempotency-Key and its replay), lists with
    filters and cursors, reads, PATCH/PUT with If-Match, history append/read/context/chat, the
    adaptive summary, clearing history, and deletes that cascade."""
    user_id = ok(api.post("/users", {"name": "Bo", "about": "another user", "metadata": {"tier": "gold"}}), 201)["id"]
    body = {"agent_id": agent_id, "user_id": user_id, "situation": "s2", "metadata": {"db_uuid": "1234", "n": 1}}

    def create() -> str:
        return ok(api.post("/sessions", body, headers={"Idempotency-Key": "create-1"}), 201)["id"]

    other = create()
    assert create() == other  # the replay

    for path in (
        "/agents",
        "/users?metadata_filter=" + json.dumps({"tier": "gold"}),
        "/sessions?metadata_filter=" + json.dumps({"db_uuid": "1234"}),
        f"/sessions?agent_id={agent_id}&sort_by=updated_at&order=asc",
        f"/sessions?user_id={user_id}&offset=0",
    ):
        ok(api.get(path))
    page = ok(api.get("/sessions?limit=1"))
    ok(api.get(f"/sessions?limit=1&cursor={page['next_cursor']}"))

    etag = api.get(f"/sessions/{session_id}").headers["ETag"]
    ok(api.patch(f"/sessions/{session_id}", {"metadata": {"db_uuid": "5678"}}, headers={"If-Match": etag}))
    ok(api.put(f"/agents/{agent_id}", {"name": "Sara", "about": "coach 2", "instructions": ["be kind"]}))
    ok(api.patch(f"/users/{user_id}", {"metadata": {"tier": None}}))

    turns = {"messages": [{"role": "user", "content": f"turn {n} " + "word " * 9} for n in range(14)]}
    ok(api.post(f"/sessions/{session_id}/history", turns, headers={"Idempotency-Key": "append-1"}), 201)
    ok(api.post(f"/sessions/{session_id}/history", turns, headers={"Idempotency-Key": "append-1"}), 201)
    ok(api.get(f"/sessions/{session_id}/history?order=desc&limit=5"))
    ok(api.get(f"/sessions/{session_id}/history?offset=3"))
    ok(api.patch(f"/sessions/{session_id}", {"token_budget": 200, "context_overflow": "adaptive"}))
    assert ok(api.get(f"/sessions/{session_id}/context"))["summarized"] is True  # writes the summary
    ok(
        api.post(
            f"/sessions/{session_id}/chat",
            {"messages": [{"role": "user", "content": "hi"}]},
            headers={"Idempotency-Key": "chat-1"},
        )
    )
    ok(api.delete(f"/sessions/{session_id}/history"), 202)  # summary, then messages

    ok(api.post(f"/sessions/{other}/history", {"messages": [{"role": "user", "content": "x"}]}), 201)
    ok(api.delete(f"/sessions/{other}"), 202)  # with its history
    ok(api.delete(f"/users/{user_id}"), 202)
    ok(api.delete(f"/agents/{agent_id}"), 202)  # and its sessions
    assert api.get(f"/sessions/{session_id}").status_code == 404


def test_the_api_needs_exactly_the_runtime_iam_actions(used, model, api, agent_id, session_id):
    exercise(api, agent_id, session_id)
    granted = set(iam.RUNTIME_IAM_ACTIONS)
    assert len(granted) == len(iam.RUNTIME_IAM_ACTIONS), "RUNTIME_IAM_ACTIONS repeats an action"
    missing = set(used) - granted
    assert not missing, f"the API used actions the role is not granted: {sorted(missing)} (counts {dict(used)})"
    unused = granted - set(used)
    assert not unused, f"granted but never used by the API: {sorted(unused)} (counts {dict(used)})"
    assert "dynamodb:Scan" not in used
