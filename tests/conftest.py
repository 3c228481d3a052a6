"""Shared fixtures: a moto-mocked table built from the one schema, API keys for two developers,
and chalice's test client over the real app."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import store
from chalicelib.rules import auth
from chalicelib.store import schema
from chalicelib.web.operations import OPERATIONS


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is not there either
        return False


# The framework backends' tests run in venvs of their own (make test's second and third runs,
# .venv-frameworks and .venv-adk), where the frameworks are installed: their pins conflict with
# the julep SDK's, and ADK's with Strands'.
collect_ignore = [
    *([] if _installed("agents") else ["frameworks"]),
    *([] if _installed("google.adk") else ["frameworks_adk"]),
]

# Every HTTP route, as (method, path, operation name), read off the operations table.
ROUTES = [(operation.method, operation.path, operation.name) for operation in OPERATIONS.values()]

TABLE = "sessions-test"
KEYS = {"alice": "key-alice-123", "bob": "key-bob-456"}


AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SESSIONS_TABLE", TABLE)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # Chat tests configure their own model provider; none leaks in from the environment.
    for name in (
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "SESSIONS_MODEL_PROVIDER",
        "SESSIONS_MODEL_ALIASES",
        "SESSIONS_MODEL_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)


# The engines the real-engine tier runs on: moto in-process (fast, the default for every test) and
# DynamoDB Local, Amazon's own engine, in a process of its own (infra/local_database.py).
MOTO, DYNAMODB_LOCAL = "moto", "dynamodb-local"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "real_engine: also run on DynamoDB Local, Amazon's own engine "
        "(the test then runs once per engine: [moto] and [dynamodb-local])",
    )
    config.addinivalue_line("markers", "stream: the test's table has its stream, as deployed and under make run")


def pytest_generate_tests(metafunc):
    chosen = any(
        "dynamodb" in (names.replace(" ", "").split(",") if isinstance(names, str) else names)
        for names, *_ in (marker.args for marker in metafunc.definition.iter_markers("parametrize"))
    )
    if metafunc.definition.get_closest_marker("real_engine") and "dynamodb" in metafunc.fixturenames and not chosen:
        metafunc.parametrize("dynamodb", [MOTO, DYNAMODB_LOCAL], indirect=True)


@pytest.fixture(scope="session")
def moto_dynamodb():
    """One moto mock and one client for the whole run: starting them costs more than a test. moto
    carries the fixes that keep it fast and small (infra/moto_dynamodb.py), as make run's does."""
    from infra import moto_dynamodb as fixes

    fixes.fix()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        with mock_aws():
            yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory):
    """DynamoDB Local in memory, one per test worker, started on first use. If it cannot start,
    every real-engine test fails and says why: the tier never skips."""
    from chalicelib.store import client_config
    from infra import local_database

    try:
        database = local_database.start(
            local_database.DYNAMODB_LOCAL, log=tmp_path_factory.mktemp("dynamodb-local") / "engine.log"
        )
    except local_database.StartFailed as error:
        pytest.fail(
            f"DynamoDB Local did not start, so the real-engine tier cannot run: {error} "
            "(make test installs it: python -m infra.dynamodb_local install)",
            pytrace=False,
        )
    try:
        yield boto3.client(
            "dynamodb",
            endpoint_url=database.endpoint,
            config=client_config(),
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
    finally:
        database.stop()


@pytest.fixture
def dynamodb(request):
    """The engine's client: moto, or DynamoDB Local for tests marked real_engine (run on both)."""
    engine = getattr(request, "param", MOTO)
    return request.getfixturevalue("moto_dynamodb" if engine == MOTO else "dynamodb_local")


@pytest.fixture
def engine(request) -> str:
    """Which engine this test runs on."""
    callspec = getattr(request.node, "callspec", None)
    return callspec.params.get("dynamodb", MOTO) if callspec is not None else MOTO


@pytest.fixture
def table(aws_env, dynamodb, monkeypatch, request):
    """A fresh table per test (built from the one schema), with API keys for two developers. Its
    stream only for tests marked `stream`: on DynamoDB Local a stream slows every write."""
    name = f"{TABLE}-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SESSIONS_TABLE", name)
    if dynamodb.meta.endpoint_url.startswith("http://127.0.0.1"):  # DynamoDB Local: clients made here go there
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.meta.endpoint_url)
    schema.create_table(dynamodb, name, stream=request.node.get_closest_marker("stream") is not None)
    the_store = store.Store(dynamodb, name)
    store.use_store(the_store)
    for developer, key in KEYS.items():
        auth.register_key(the_store, developer, key)
    yield the_store
    store.use_store(None)
    dynamodb.delete_table(TableName=name)


@pytest.fixture
def calls_atomic(table, engine, monkeypatch):
    """Each DynamoDB call atomic, as DynamoDB makes it, for tests of concurrent writers. moto's
    in-process backend is not: a transaction checks its conditions and writes without a lock, so
    threads can interleave inside one call; on moto the store's client takes a lock per call.
    Threads still interleave between calls, which is where a read-modify-write race lives.
    DynamoDB Local is the real thing and gets no help."""
    if engine == MOTO:
        lock = threading.Lock()

        def locked(_name, call):
            with lock:
                return call()

        monkeypatch.setattr(table, "client", InterceptedClient(table.client, locked))
    return table


def count_conflicts(monkeypatch, table, method: str) -> list[int]:
    """A list that grows by one each time the store's `method` raises VersionConflict (the race
    was lost and is retried): a concurrency test asserts it is not empty, so it proved something."""
    lost: list[int] = []
    real = getattr(table, method)

    def counting(*args, **kwargs):
        try:
            return real(*args, **kwargs)
        except store.VersionConflict:
            lost.append(1)
            raise

    monkeypatch.setattr(table, method, counting)
    return lost


class FakeModel:
    """The tests' one model provider. It records each call in `calls` ({model, messages,
    settings}) and runs `on_call()` if set; it answers a chat with `reply` and a request to
    summarize with `summary` (the reply too, when None). `reply` and `summary` may be functions of
    the request's last message; `usage` is (prompt, completion) tokens, or None to let the service
    count them."""

    def __init__(self, reply: Any = "reply", summary: Any = None, usage: tuple[int, int] | None = (1, 1)) -> None:
        self.reply, self.summary, self.usage = reply, summary, usage
        self.calls: list[dict[str, Any]] = []
        self.on_call = None

    def complete(self, model, messages, settings, timeout, tools=None, tool_choice=None):
        from chalicelib.providers import Completion

        self.calls.append({"model": model, "messages": messages, "settings": settings})
        if self.on_call:
            self.on_call()
        request = str(messages[-1]["content"])
        answer = self.summary if self.summary is not None and "Turns to add" in request else self.reply
        tokens = {} if self.usage is None else {"prompt_tokens": self.usage[0], "completion_tokens": self.usage[1]}
        return Completion(content=answer(request) if callable(answer) else answer, finish_reason="stop", **tokens)


@pytest.fixture
def model():
    """A FakeModel answering every model call of the test."""
    with model_provider(FakeModel()) as fake:
        yield fake


@contextlib.contextmanager
def model_provider(provider):
    """`provider` answers the model calls inside the block."""
    from chalicelib import providers

    providers.use_provider(provider)
    try:
        yield provider
    finally:
        providers.use_provider(None)


def table_keys(store) -> set[tuple[str, str]]:
    """(pk, sk) of every item of the test's table."""
    return {(item["pk"]["S"], item["sk"]["S"]) for item in scan_all(store)}


def mentioning(store, *ids: str) -> set[tuple[str, str]]:
    """(pk, sk) of every item whose key names one of the ids."""
    return {key for key in table_keys(store) if any(i in key[0] or i in key[1] for i in ids)}


def scan_all(store) -> list[dict[str, Any]]:
    """Every raw item of the test's table, in key order."""
    items: list[dict[str, Any]] = []
    args: dict[str, Any] = {"TableName": store.table, "ConsistentRead": True}
    while True:
        page = store.client.scan(**args)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class InterceptedClient:
    """A boto3 client whose every API call runs as `around(operation_name, call)`."""

    def __init__(self, client: Any, around: Any) -> None:
        self._client, self._around = client, around

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name == "exceptions" or not callable(attribute):
            return attribute
        return lambda *args, **kwargs: self._around(name, lambda: attribute(*args, **kwargs))


class Api:
    """chalice.test.Client with JSON in and out and a developer's key."""

    def __init__(self, client: Any, key: str | None) -> None:
        self.client = client
        self.key = key

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = "default",
    ):
        sent = {"Content-Type": "application/json", **(headers or {})}
        key = self.key if key == "default" else key
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(self.client.http, method.lower())(path, headers=sent, body=payload)
        response.json = json.loads(response.body) if response.body else None
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def as_(self, developer: str) -> Api:
        return Api(self.client, KEYS[developer])


@pytest.fixture
def api(table):
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app) as client:
        yield Api(client, KEYS["alice"])


@pytest.fixture
def agent_id(api) -> str:
    return api.post("/agents", {"name": "Sara", "about": "coach", "instructions": ["be kind"]}).json["id"]


@pytest.fixture
def user_id(api) -> str:
    return api.post("/users", {"name": "Ann", "about": "a user"}).json["id"]


@pytest.fixture
def session_id(api, agent_id, user_id) -> str:
    return api.post(
        "/sessions", {"agent_id": agent_id, "user_id": user_id, "situation": "hi", "metadata": {"db_uuid": "1234"}}
    ).json["id"]


OPENAI_API_KEY = "sk-test-secret-4f1c9a7e2b"
REPLY = "Hello Ann, I am the fake model."


# --- a chat-completions server on loopback ------------------------------------------------------


def completion(content: str = REPLY, finish_reason: str = "stop", usage: dict | None = None) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": usage if usage is not None else {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server for the real provider adapter to call (the in-process stand-in
    for a provider is conftest.FakeModel). Records every request; answers from a script of (status,
    body, delay), then the default."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, Any, float]] = []
        self.release = threading.Event()  # cuts any scripted delay short at teardown
        self.lock = threading.Lock()

    def answer(self, status: int = 200, body: Any = None, delay: float = 0.0) -> None:
        self.script.append((status, completion() if body is None else body, delay))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [request["json"] for request in self.requests]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
                with fake.lock:
                    fake.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": parsed}
                    )
                    status, body, delay = fake.script.pop(0) if fake.script else (200, completion(), 0.0)
                if delay:
                    fake.release.wait(delay)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (the timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def fake_model():
    fake = FakeOpenAIServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    fake.port = server.server_address[1]
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def openai(fake_model, monkeypatch):
    """The service configured for the fake through the standard environment variables."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{fake_model.port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_API_KEY)
    monkeypatch.setenv("SESSIONS_MODEL_TIMEOUT", "5")
    return fake_model


@pytest.fixture
def counted(table, monkeypatch) -> Counter:
    """The DynamoDB calls the test makes through the store, by operation name."""
    calls: Counter = Counter()

    def count(name, call):
        calls[name] += 1
        return call()

    monkeypatch.setattr(table, "client", InterceptedClient(table.client, count))
    return calls


@pytest.fixture
def served_url(table):
    """make run's HTTP front (infra/local_gateway.py) on a free loopback port, in-process on the
    test's table: for clients that speak HTTP (sessions_client and the framework backends)."""
    import app as app_module
    from infra.local_gateway import serve_in_thread

    server = serve_in_thread(app_module.app)
    yield server.url
    server.shutdown()
    server.server_close()
