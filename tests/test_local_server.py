"""`make run`'s server as a real process: moto's DynamoDB in its own process, keys from
SESSIONS_API_KEYS, the SDK against it, and a clean stop on SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from infra.local_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def _start(env_extra: dict[str, str]) -> tuple[subprocess.Popen, str, list[str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update({"PORT": str(port), "SESSIONS_TABLE": "local-test", **env_extra})
    process = subprocess.Popen([sys.executable, str(ROOT / "infra" / "local_server.py")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Serving the sessions API"):
            return process, f"http://127.0.0.1:{port}", lines
    process.kill()
    pytest.fail("local server did not start:\n" + "".join(lines))


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_make_run_serves_the_sdk_and_stops_on_sigterm_to_its_group():
    process, base_url, _ = _start({"SESSIONS_API_KEYS": "acme:key-one,other:key-two"})
    try:
        dynamodb = _children(process.pid)
        assert len(dynamodb) == 1, "moto's DynamoDB runs as its own child process"
        from julep import Client
        client = Client(api_key="key-one", base_url=base_url)
        agent = client.agents.create(name="Sara", about="coach", instructions=["x"])
        session = client.sessions.create(agent_id=agent.id, situation="s", metadata={"db_uuid": "1"})
        assert [s.id for s in client.sessions.list(metadata_filter={"db_uuid": "1"})] == [session.id]
        other = httpx.get(f"{base_url}/sessions", headers={"Authorization": "Bearer key-two"})
        assert other.status_code == 200 and other.json() == {"items": [], "next_cursor": None}
        assert httpx.get(f"{base_url}/sessions").status_code == 401
        deep = httpx.get(f"{base_url}/no/such/route", headers={"Authorization": "Bearer key-one"})
        assert deep.status_code == 404 and deep.json()["error"]["code"] == "not_found"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert all(_gone(pid) for pid in dynamodb)


def test_without_keys_it_makes_one_and_sigterm_to_it_alone_stops_dynamodb():
    process, base_url, lines = _start({"SESSIONS_API_KEYS": ""})
    try:
        dynamodb = _children(process.pid)
        printed = [line for line in lines if line.startswith("API key for developer 'local': ")]
        assert printed, lines
        key = printed[0].split(": ", 1)[1].strip()
        answer = httpx.get(f"{base_url}/agents", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert all(_gone(pid) for pid in dynamodb)


def test_with_an_endpoint_given_it_uses_that_dynamodb_and_starts_none():
    port = free_port()
    dynamodb = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        process, base_url, lines = _start({"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "SESSIONS_API_KEYS": "acme:k",
                                           "SESSIONS_TABLE": "given-endpoint"})
        try:
            assert _children(process.pid) == []
            assert not any(line.startswith("DynamoDB (moto)") for line in lines)
            created = httpx.post(f"{base_url}/users", json={"name": "Ann"}, headers={"Authorization": "Bearer k"})
            assert created.status_code == 201
            import boto3
            client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id="x", aws_secret_access_key="x")
            assert "given-endpoint" in client.list_tables()["TableNames"]
            assert client.scan(TableName="given-endpoint")["Count"] >= 4  # key, user, 2 list entries
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        dynamodb.terminate()
        dynamodb.wait(timeout=10)
