"""The typed client (sessions_client) against the service over real HTTP (make run's front,
in-process on the test's table), and its retry rules against a scripted transport."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

import sessions_client as sc
from conftest import KEYS


@pytest.fixture
def client(served_url):
    with sc.Client(KEYS["alice"], served_url) as client:
        yield client


@pytest.fixture
def session(client):
    agent = client.agents.create(name="Sara", instructions=["Be kind"], metadata={"team": "a"})
    user = client.users.create(name="Ann")
    created = client.sessions.create(agent_id=agent.id, user_id=user.id, situation="a coach", metadata={"db": "1"})
    return client.sessions.get(created.id)


def test_resources_keep_their_metadata_and_their_version(client, session):
    assert session.metadata == {"db": "1"} and session.situation == "a coach"
    assert session.etag == '"1"'
    agent = client.agents.get(session.agent_id)
    assert (agent.metadata, agent.instructions, agent.etag) == ({"team": "a"}, ["Be kind"], '"1"')
    updated = client.sessions.patch(session.id, metadata={"db": None, "x": 2}, if_match=session.etag)
    assert updated.etag == '"2"'
    assert client.sessions.get(session.id).metadata == {"x": 2}


def test_errors_carry_the_api_code_status_and_request_id(client, session):
    with pytest.raises(sc.PreconditionFailed) as stale:
        client.sessions.patch(session.id, situation="x", if_match='"7"')
    assert (stale.value.status, stale.value.code) == (412, "precondition_failed") and stale.value.request_id
    with pytest.raises(sc.NotFound) as missing:
        client.agents.get("00000000-0000-4000-8000-000000000000")
    assert missing.value.code == "not_found"
    with pytest.raises(sc.ValidationFailed) as invalid:
        client.sessions.patch(session.id, agent_id=session.agent_id)
    assert invalid.value.details[0]["field"] == "agent_id"
    with pytest.raises(sc.BadRequest):
        client.sessions.list(limit=0)
    assert client.sessions.get(session.id).etag == '"1"'  # nothing changed


def test_iter_follows_cursors_to_the_end_and_list_filters(client, session):
    for n in range(25):
        client.sessions.create(agent_id=session.agent_id, metadata={"db": str(n % 2), "n": n})
    everything = list(client.sessions.iter(page_size=7))
    assert len(everything) == 26 and len({s.id for s in everything}) == 26
    odd = list(client.sessions.iter(page_size=5, metadata_filter={"db": "1"}, order="asc"))
    assert [s.metadata.get("n") for s in odd] == [None, *range(1, 25, 2)]
    page = client.sessions.list(limit=3, agent_id=session.agent_id)
    assert len(page.items) == 3 and page.next_cursor


def test_history_append_read_rewind_fork_and_end(client, session):
    history = client.sessions.history
    first = history.append(session.id, [{"role": "user", "content": "hi"}], after=None).items[0]
    with pytest.raises(sc.HistoryMoved) as moved:
        history.append(session.id, [{"role": "user", "content": "late"}], after=None)
    assert moved.value.code == "history_moved"
    for n in range(12):
        history.append(session.id, [{"role": "assistant", "content": f"m{n}"}])
    assert [m.content for m in history.iter(session.id, page_size=5)] == ["hi", *(f"m{n}" for n in range(12))]
    assert [m.content for m in history.list(session.id, limit=2, order="desc").items] == ["m11", "m10"]
    fork = client.sessions.fork(session.id, up_to=first.id)
    assert [m.content for m in history.iter(fork.id)] == ["hi"]
    history.rewind(session.id, first.id)
    assert [m.id for m in history.iter(session.id)] == [first.id]
    assert history.get(session.id, first.id).content == "hi"
    ended = client.sessions.end(session.id)
    assert ended.status == "ended"
    with pytest.raises(sc.SessionEnded):
        history.append(session.id, [{"role": "user", "content": "again"}])


def test_a_create_with_the_same_idempotency_key_creates_once(client):
    one = client.agents.create(name="a", idempotency_key="k-1")
    two = client.agents.create(name="a", idempotency_key="k-1")
    assert one.id == two.id and len(client.agents.list().items) == 1


def test_the_async_client_does_the_same(served_url):
    async def flow():
        async with sc.AsyncClient(KEYS["alice"], served_url) as client:
            agent = await client.agents.create(name="Sara", metadata={"k": True})
            created = await client.sessions.create(agent_id=agent.id)
            for n in range(5):
                await client.sessions.history.append(created.id, [{"role": "user", "content": str(n)}])
            read = [m.content async for m in client.sessions.history.iter(created.id, page_size=2)]
            got = await client.agents.get(agent.id)
            with pytest.raises(sc.NotFound):
                await client.sessions.get("00000000-0000-4000-8000-000000000000")
            return read, got.metadata

    assert asyncio.run(flow()) == (["0", "1", "2", "3", "4"], {"k": True})


# --- retries: only where the API says a retry is safe -------------------------------------------


def scripted(*answers):
    """A client whose transport answers in turn: (status, code) or an exception; records requests."""
    sent = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = answers[min(len(sent), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        status, code = answer
        if status < 400:
            return httpx.Response(status, json={"id": "a", "created_at": "t", "updated_at": "t", "name": "n"})
        body = {"error": {"code": code, "message": code, "details": []}}
        return httpx.Response(status, json=body, headers={"Retry-After": "0"})

    http = httpx.Client(base_url="http://test", transport=httpx.MockTransport(handle))
    return sc.Client("k", http=http, policy=sc.Policy(attempts=4, backoff=0)), sent


def test_a_503_with_retry_after_is_retried_then_answers():
    client, sent = scripted((503, "service_unavailable"), (200, None))
    assert client.agents.get("a").name == "n" and len(sent) == 2


def test_write_outcome_unknown_is_resent_with_the_same_idempotency_key_only():
    client, sent = scripted((503, "write_outcome_unknown"), (201, None))
    client.agents.create(name="n")
    assert len(sent) == 2
    keys = [request.headers["idempotency-key"] for request in sent]
    assert keys[0] == keys[1] and keys[0].startswith("sc-")
    assert json.loads(sent[0].content) == json.loads(sent[1].content) == {"name": "n"}

    client, sent = scripted((503, "write_outcome_unknown"), (200, None))
    with pytest.raises(sc.WriteOutcomeUnknown):  # a PATCH carries no key: never resent
        client.agents.patch("a", about="x")
    assert len(sent) == 1


def test_what_no_wait_fixes_is_not_retried_and_attempts_are_bounded():
    client, sent = scripted((503, "model_provider_not_configured"))
    with pytest.raises(sc.Unavailable):
        client.sessions.chat("s", [{"role": "user", "content": "hi"}])
    assert len(sent) == 1
    client, sent = scripted((503, "service_unavailable"))
    with pytest.raises(sc.Unavailable):
        client.agents.get("a")
    assert len(sent) == 4
    client, sent = scripted((409, "conflict"))
    with pytest.raises(sc.Conflict):
        client.agents.get("a")
    assert len(sent) == 1


def test_a_dropped_connection_is_retried_only_where_a_repeat_is_harmless():
    client, sent = scripted(httpx.ConnectError("reset"), (200, None))
    assert client.agents.get("a").id == "a" and len(sent) == 2
    client, sent = scripted(httpx.ConnectError("reset"), (200, None))
    with pytest.raises(httpx.ConnectError):
        client.agents.patch("a", about="x")
    assert len(sent) == 1


def test_the_service_and_the_client_never_import_each_other():
    """Two packages: the service deploys without the client, the client installs without the service."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent

    def imported(paths):
        names = set()
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
        return names

    service = [root / "app.py", *(root / "chalicelib").rglob("*.py")]
    client = list((root / "sessions_client").rglob("*.py"))
    assert len(client) >= 5
    assert "sessions_client" not in imported(service)
    assert not {"chalicelib", "app"} & imported(client)
