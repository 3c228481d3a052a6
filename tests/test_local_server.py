"""`make run` as a real process (infra/local_server.py): DynamoDB Local in its own process with its
data in SESSIONS_DATA_DIR, kept across restarts; the fallback to moto's server, said in one line;
start-up errors as one line before anything starts; a database that dies noticed; and no Java
process left behind however it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import completion
from infra.local_database import free_port

ROOT = Path(__file__).resolve().parent.parent


class Run:
    """One `make run`: its process, its URL and what it printed."""

    started: list[Run] = []

    def __init__(self, env_extra: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        env.update({"PORT": str(self.port), "SESSIONS_TABLE": "local-test", "SESSIONS_API_KEYS": "", **env_extra})
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "infra" / "local_server.py"), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env_extra
        self.lines: list[str] = []
        self.reader: threading.Thread | None = None
        Run.started.append(self)

    def serving(self) -> Run:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("Serving the sessions API"):
                # From here it logs a line per request: keep reading, or a full pipe stalls it.
                self.reader = threading.Thread(target=self._keep_reading, daemon=True)
                self.reader.start()
                return self
        self.process.kill()
        pytest.fail("make run did not start:\n" + "".join(self.lines + [self.process.stdout.read()]))

    def _keep_reading(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def finished(self, seconds: float = 90) -> tuple[int, list[str]]:
        if self.reader is not None:  # serving: its reader has the output
            self.process.wait(timeout=seconds)
            self.reader.join(timeout=seconds)
            return self.process.returncode, self.lines
        out, _ = self.process.communicate(timeout=seconds)
        self.lines += out.splitlines(keepends=True)
        return self.process.returncode, self.lines

    def printed(self, start: str) -> str:
        found = [line for line in self.lines if line.startswith(start)]
        assert found, self.lines
        return found[0][len(start) :].strip()

    @property
    def database_pid(self) -> int:
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 1, f"want one database process, found {children}"
        return int(children[0])

    def stop(self, how: int = signal.SIGTERM, group: bool = True) -> int:
        (os.killpg if group else os.kill)(self.process.pid, how)
        return self.process.wait(timeout=30)

    def stop_as_make_does(self) -> int:
        """SIGTERM to the process group, and moments later the one make forwards to its child: the
        exit code, once the output is read, with nothing printed while stopping."""
        os.killpg(self.process.pid, signal.SIGTERM)
        for pause in (0.0, 0.001, 0.005):  # at once (pending in the handler), and moments later
            time.sleep(pause)
            try:
                os.kill(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                break
        code, lines = self.finished(30)
        said = [line for line in lines if not line.startswith('{"level":"INFO","message":"request"')]
        assert said[-1].startswith("Serving the sessions API"), said  # nothing after it but request logs
        return code


@pytest.fixture(autouse=True)
def no_run_left_behind():
    """Whatever a test did or failed to do, its make runs end with it (their databases follow:
    Linux stops a database whose make run dies)."""
    yield
    for run in Run.started:
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait(timeout=30)
    Run.started.clear()


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def java_processes_of(data_dir: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"DynamoDBLocal.jar.*{data_dir}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def fake_java(tmp_path: Path, version: str) -> dict[str, str]:
    """A PATH whose first `java` says it is `version` (and an empty JAVA_HOME)."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    java = bin_dir / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2020-01-01' >&2\n")
    java.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "JAVA_HOME": ""}


def test_dynamodb_local_keeps_keys_sessions_history_and_filters_across_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    first = Run({"SESSIONS_DATA_DIR": str(data_dir)}).serving()
    try:
        assert first.printed("Database: ").startswith("DynamoDB Local 3.3.1 at http://127.0.0.1:")
        assert f"data in {data_dir}" in first.printed("Database: ")
        assert "DynamoDBLocal.jar" in command_of(first.database_pid)
        key = first.printed("API key for developer 'local': ")
        from julep import Client

        client = Client(api_key=key, base_url=first.url)
        agent = client.agents.create(name="Sara", about="coach", instructions=["x"])
        session = client.sessions.create(agent_id=agent.id, situation="s", metadata={"db_uuid": "1234"})
        headers = {"Authorization": f"Bearer {key}"}
        appended = httpx.post(
            f"{first.url}/sessions/{session.id}/history",
            headers=headers,
            json={"messages": [{"role": "user", "content": "hello"}]},
        )
        assert appended.status_code == 201
        # background purges under way when it stops (issue 21): a rewind of 800 messages to the
        # first, and a deleted fork parent of 400 whose fork goes
        with httpx.Client(base_url=first.url, headers=headers, timeout=60) as http:
            rewound, parent = (http.post("/sessions", json={"agent_id": agent.id}).json()["id"] for _ in range(2))
            for session_id, count in ((rewound, 800), (parent, 400)):
                for _ in range(count // 50):
                    body = {"messages": [{"role": "user", "content": "m" * 200}] * 50}
                    assert http.post(f"/sessions/{session_id}/history", json=body).status_code == 201
            first_message = http.get(f"/sessions/{rewound}/history", params={"limit": 1}).json()["items"][0]
            fork = http.post(f"/sessions/{parent}/fork").json()["id"]
            assert http.delete(f"/sessions/{parent}").status_code == 202
            assert http.delete(f"/sessions/{fork}").status_code == 202
            answer = http.delete(f"/sessions/{rewound}/history", params={"after": first_message["id"]})
            assert answer.status_code == 202, answer.text
        endpoint = first.printed("Database: ").split(" at ", 1)[1].split(",")[0]
        database = first.database_pid
    finally:
        assert first.stop() == 0
    assert gone(database), "the JVM outlived make run"

    second = Run({"SESSIONS_DATA_DIR": str(data_dir)}).serving()
    try:
        assert second.printed("API key for developer 'local': ") == key, "a restart made a new key"
        client = Client(api_key=key, base_url=second.url)
        assert [s.id for s in client.sessions.list(metadata_filter={"db_uuid": "1234"})] == [session.id]
        history = httpx.get(f"{second.url}/sessions/{session.id}/history", headers=headers).json()["items"]
        assert [(m["role"], m["content"]) for m in history] == [("user", "hello")]
        left = httpx.get(f"{second.url}/sessions/{rewound}/history", headers=headers).json()["items"]
        assert [m["id"] for m in left] == [first_message["id"]]  # hidden at once, whatever the purge's state
        endpoint = second.printed("Database: ").split(" at ", 1)[1].split(",")[0]
        at_restart = messages_of(endpoint, "local-test", rewound) + messages_of(endpoint, "local-test", parent)
        started = time.monotonic()
        while messages_of(endpoint, "local-test", rewound) > 1 or messages_of(endpoint, "local-test", parent) > 0:
            assert time.monotonic() - started < 90, "the purges under way at the stop did not finish after the restart"
            time.sleep(0.5)
        print(f"messages left to purge at the restart: {at_restart - 1}; gone {time.monotonic() - started:.1f} s on")
    finally:
        assert second.stop(signal.SIGINT, group=False) == 0  # Ctrl-C to it alone
    assert java_processes_of(data_dir) == []

    empty = Run({"SESSIONS_DATA_DIR": str(data_dir)}, ("--empty",)).serving()
    try:
        new_key = empty.printed("API key for developer 'local': ")
        assert new_key != key
        assert httpx.get(f"{empty.url}/agents", headers=headers).status_code == 401
        assert httpx.get(f"{empty.url}/agents", headers={"Authorization": f"Bearer {new_key}"}).json()["items"] == []
    finally:
        assert empty.stop(group=False) == 0  # SIGTERM to it alone
    assert java_processes_of(data_dir) == []


def test_issue_14_flows_over_http_against_make_run(tmp_path, fake_model):
    """The two black-box flows of issue 14, over real HTTP (a kept-alive client) against make run
    on DynamoDB Local: a tool-calling chat against a loopback OpenAI-compatible server (the call,
    the tool result and the final answer stored in order), and fork at message 5 of 20, then rewind
    the original after message 10."""
    run = Run(
        {"SESSIONS_DATA_DIR": str(tmp_path / "data"), "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_model.port}/v1"}
    ).serving()
    try:
        key = run.printed("API key for developer 'local': ")
        with httpx.Client(base_url=run.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
            agent = http.post("/agents", json={"name": "Sara", "tools": [weather]}).json()["id"]
            session = http.post("/sessions", json={"agent_id": agent}).json()["id"]
            call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            calling = completion()
            calling["choices"][0].update(
                message={"role": "assistant", "content": None, "tool_calls": [call]}, finish_reason="tool_calls"
            )
            fake_model.answer(body=calling)
            fake_model.answer(body=completion("18 C and sunny."))
            first = http.post(f"/sessions/{session}/chat", json={"messages": [{"role": "user", "content": "Paris?"}]})
            assert first.status_code == 200 and first.json()["finish_reason"] == "tool_calls", first.text
            result = {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}
            final = http.post(f"/sessions/{session}/chat", json={"messages": [result]})
            assert final.status_code == 200 and final.json()["finish_reason"] == "stop", final.text
            assert fake_model.bodies[0]["tools"] == [weather]
            items = http.get(f"/sessions/{session}/history").json()["items"]
            assert [(m["role"], m["content"], m.get("tool_calls"), m.get("tool_call_id")) for m in items] == [
                ("user", "Paris?", None, None),
                ("assistant", "", [call], None),
                ("tool", "18 C", None, "call_1"),
                ("assistant", "18 C and sunny.", None, None),
            ]

            original = http.post("/sessions", json={"agent_id": agent}).json()["id"]
            messages = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"m{n}"} for n in range(1, 21)]
            stored = http.post(f"/sessions/{original}/history", json={"messages": messages}).json()["items"]
            fork = http.post(f"/sessions/{original}/fork", json={"up_to": stored[4]["id"]})
            assert fork.status_code == 201, fork.text
            rewind = http.delete(f"/sessions/{original}/history", params={"after": stored[9]["id"]})
            assert rewind.status_code == 202, rewind.text

            def contents(session_id: str) -> list[str]:
                return [m["content"] for m in http.get(f"/sessions/{session_id}/history").json()["items"]]

            assert contents(fork.json()["id"]) == [f"m{n}" for n in range(1, 6)]
            assert contents(original) == [f"m{n}" for n in range(1, 11)]
    finally:
        assert run.stop() == 0


def items_of(endpoint: str, table: str, record_id: str) -> int:
    """How many items of the table name `record_id` (a Scan: the test's own look at the table)."""
    import boto3

    client = boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    count, args = 0, {"TableName": table, "ProjectionExpression": "pk, sk"}
    while True:
        page = client.scan(**args)
        count += sum(record_id in item["pk"]["S"] + item["sk"]["S"] for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return count
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def messages_of(endpoint: str, table: str, session_id: str) -> int:
    """How many messages the session's partition holds (the store's raw view: the test's own look)."""
    import boto3

    from chalicelib.store import Store

    client = boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return sum(1 for _ in Store(client, table).messages("local", session_id, page_size=1000))


def gone_within(seconds: float, endpoint: str, table: str, record_id: str) -> float | None:
    """Seconds until the table holds no item of `record_id`, or None past `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if items_of(endpoint, table, record_id) == 0:
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def lifecycle_flows(run: Run, endpoint: str, table: str, messages: int) -> dict[str, float]:
    """Issue 15's black-box flows against a running make run: a session with `ttl: 2` is a 404 and
    in no list after 3 s, and its items leave the table (within 10 s when make run is alone; the
    test allows more under a loaded suite); a DELETE of a session with `messages` messages answers
    202 and its items leave the table. How fast, at 10,000 messages, is `make bench`'s
    (bench/lifecycle.py): tests assert behaviour, not speed."""
    key = run.printed("API key for developer 'local': ") if "SESSIONS_API_KEYS" not in run.env else "key-one"
    figures = {}
    with httpx.Client(base_url=run.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        agent = http.post("/agents", json={"name": "A"}).json()["id"]
        short = http.post("/sessions", json={"agent_id": agent, "ttl": 2}).json()["id"]
        created = time.monotonic()
        assert (
            http.post(
                f"/sessions/{short}/history", json={"messages": [{"role": "user", "content": "x"}] * 20}
            ).status_code
            == 201
        )
        time.sleep(max(0.0, 3 - (time.monotonic() - created)))
        assert http.get(f"/sessions/{short}").status_code == 404
        for query in ("", f"?agent_id={agent}", "?status=active"):
            assert short not in [s["id"] for s in http.get(f"/sessions{query}").json()["items"]], query
        waited = gone_within(60, endpoint, table, short)
        assert waited is not None, "the expired session's items are still in the table a minute on"
        figures["ttl_gone_after_s"] = 3 + waited

        long = http.post("/sessions", json={"agent_id": agent}).json()["id"]
        for _ in range(messages // 50):
            body = {"messages": [{"role": "user", "content": "m" * 200}] * 50}
            assert http.post(f"/sessions/{long}/history", json=body).status_code == 201
        started = time.monotonic()
        deleted = http.delete(f"/sessions/{long}")
        figures["delete_s"] = time.monotonic() - started
        assert deleted.status_code == 202, deleted.text
        purged = gone_within(120, endpoint, table, long)
        assert purged is not None, "the deleted session's items are still in the table two minutes on"
        figures["purge_s"] = purged
    print(f"{endpoint}: {figures}")
    return figures


def test_issue_15_flows_over_http_against_make_run_on_dynamodb_local(tmp_path):
    run = Run({"SESSIONS_DATA_DIR": str(tmp_path / "data")}).serving()
    try:
        endpoint = run.printed("Database: ").split(" at ", 1)[1].split(",")[0]
        assert run.printed("Cascades: ").startswith("the table's stream, consumed here")
        lifecycle_flows(run, endpoint, "local-test", 2_000)
    finally:
        assert run.stop() == 0


def test_issue_15_flows_on_the_moto_fallback_and_on_a_given_endpoint():
    moto = Run({"SESSIONS_LOCAL_DB": "moto"}).serving()
    try:
        endpoint = moto.printed("Database: ").split(" at ", 1)[1].split(",")[0]
        lifecycle_flows(moto, endpoint, "local-test", 500)
        given = Run(
            {"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "SESSIONS_API_KEYS": "acme:key-one", "SESSIONS_TABLE": "given"}
        ).serving()
        try:
            lifecycle_flows(given, endpoint, "given", 500)
        finally:
            assert given.stop() == 0
    finally:
        assert moto.stop() == 0


def test_a_database_that_dies_is_noticed_and_make_run_exits_1(tmp_path):
    run = Run({"SESSIONS_DATA_DIR": str(tmp_path / "data"), "SESSIONS_API_KEYS": "acme:k"}).serving()
    try:
        os.kill(run.database_pid, signal.SIGKILL)
        code, lines = run.finished(seconds=30)
    finally:
        if run.process.poll() is None:
            run.stop(signal.SIGKILL)
    assert code == 1
    said = [line for line in lines if line.startswith("make run: ")]
    assert len(said) == 1 and "exited with code -9; stopping" in said[0], lines


def test_a_make_run_killed_outright_takes_its_database_with_it(tmp_path):
    run = Run({"SESSIONS_DATA_DIR": str(tmp_path / "data"), "SESSIONS_API_KEYS": "acme:k"}).serving()
    database = run.database_pid
    assert run.stop(signal.SIGKILL, group=False) == -signal.SIGKILL  # no cleanup of its own ran
    assert gone(database), "the JVM outlived a killed make run"


@pytest.mark.parametrize(
    "env, args, says",
    [
        ({"SESSIONS_API_KEYS": "alice"}, (), "bad SESSIONS_API_KEYS entry 'alice'"),
        ({"SESSIONS_API_KEYS": " , "}, (), "SESSIONS_API_KEYS names no key"),
        ({"SESSIONS_DEFAULT_TTL": "a day"}, (), "SESSIONS_DEFAULT_TTL must be seconds from 1 to"),
        ({"SESSIONS_DEFAULT_TTL": '{"acme": 0}'}, (), "SESSIONS_DEFAULT_TTL must be seconds from 1 to"),
        ({"SESSIONS_LOCAL_DB": "postgres"}, (), "SESSIONS_LOCAL_DB must be dynamodb-local or moto; got 'postgres'"),
        ({"PORT": "eighty"}, (), "PORT must be a port number"),
        ({"SESSIONS_TABLE": "ab"}, (), "SESSIONS_TABLE must be 3 to 255 letters"),
        ({"SESSIONS_API_KEYS": "alice:k,bob:k"}, (), "gives developer 'bob' the key it gives developer 'alice'"),
        ({}, ("--fresh",), "unknown argument '--fresh'"),
    ],
)
def test_bad_settings_are_one_line_before_anything_starts(env, args, says):
    run = Run(env, args)
    code, lines = run.finished()
    assert code == 2
    assert lines == [f"make run: {lines[0][len('make run: ') :]}"] and says in lines[0], lines


def test_a_port_in_use_is_one_line_and_no_database_starts(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = Run({"PORT": str(taken.getsockname()[1]), "SESSIONS_DATA_DIR": str(tmp_path / "data")})
        code, lines = run.finished()
    assert code == 2 and len(lines) == 1, lines
    assert "cannot serve on 127.0.0.1:" in lines[0] and "set PORT to a free port" in lines[0]
    assert not (tmp_path / "data").exists(), "the database was started before the port was checked"


def test_a_data_folder_in_use_is_one_line(tmp_path):
    data_dir = tmp_path / "data"
    first = Run({"SESSIONS_DATA_DIR": str(data_dir)}).serving()
    try:
        code, lines = Run({"SESSIONS_DATA_DIR": str(data_dir)}).finished()
        assert code == 2 and len(lines) == 1 and "is in use by another make run" in lines[0], lines
        assert httpx.get(f"{first.url}/agents").status_code == 401  # the first one is untouched
    finally:
        first.stop()


def test_without_java_17_it_falls_back_to_moto_and_says_so_in_one_line(tmp_path):
    run = Run(
        {**fake_java(tmp_path, "11.0.2"), "SESSIONS_API_KEYS": "acme:k", "SESSIONS_DATA_DIR": str(tmp_path / "data")}
    ).serving()
    try:
        said = [line for line in run.lines if line.startswith("make run: ")]
        assert len(said) == 1, run.lines
        assert "DynamoDB Local is not available" in said[0] and "is Java 11" in said[0]
        assert "using moto's server instead" in said[0]
        assert run.printed("Database: ").startswith("moto's DynamoDB server at http://127.0.0.1:")
        assert "infra.moto_dynamodb" in command_of(run.database_pid)
        created = httpx.post(f"{run.url}/users", json={"name": "Ann"}, headers={"Authorization": "Bearer k"})
        assert created.status_code == 201
        database = run.database_pid
    finally:
        assert run.stop() == 0
    assert gone(database)


def test_asked_for_dynamodb_local_without_java_17_it_refuses_in_one_line(tmp_path):
    code, lines = Run({**fake_java(tmp_path, "1.8.0_292"), "SESSIONS_LOCAL_DB": "dynamodb-local"}).finished()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("make run: SESSIONS_LOCAL_DB=dynamodb-local, but") and "is Java 8" in lines[0]


def test_a_key_another_developer_holds_in_the_data_is_refused_in_one_line():
    """A second make run on the same database giving bob alice's key must not hand alice's key
    (and her data) to bob: it stops, naming the variable and the developers."""
    first = Run({"SESSIONS_LOCAL_DB": "moto", "SESSIONS_API_KEYS": "alice:shared-key"}).serving()
    try:
        endpoint = first.printed("Database: ").split(" at ", 1)[1].split(",")[0]
        code, lines = Run({"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "SESSIONS_API_KEYS": "bob:shared-key"}).finished()
        said = [line for line in lines if line.startswith("make run: ")]
        assert code == 2 and len(said) == 1, lines
        assert "SESSIONS_API_KEYS gives developer 'bob' a key that is developer 'alice''s" in said[0]
        mine = httpx.get(f"{first.url}/agents", headers={"Authorization": "Bearer shared-key"})
        assert mine.status_code == 200
        created = httpx.post(f"{first.url}/users", json={"name": "Ann"}, headers={"Authorization": "Bearer shared-key"})
        assert created.status_code == 201  # still alice's key, for alice's data
    finally:
        first.stop()


def test_moto_when_asked_and_an_endpoint_given_starts_nothing():
    moto = Run({"SESSIONS_LOCAL_DB": "moto", "SESSIONS_API_KEYS": "acme:key-one,other:key-two"}).serving()
    try:
        assert moto.printed("Database: ").startswith("moto's DynamoDB server at ")
        endpoint = moto.printed("Database: ").split(" at ", 1)[1].split(",")[0]
        given = Run(
            {
                "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
                "SESSIONS_API_KEYS": "acme:key-one",
                "SESSIONS_TABLE": "given-endpoint",
            }
        ).serving()
        try:
            assert (
                subprocess.run(
                    ["ps", "-o", "pid=", "--ppid", str(given.process.pid)], capture_output=True, text=True
                ).stdout.split()
                == []
            )
            assert given.printed("Database: ") == f"the one at {endpoint} (AWS_ENDPOINT_URL_DYNAMODB); nothing started"
            created = httpx.post(
                f"{given.url}/users", json={"name": "Ann"}, headers={"Authorization": "Bearer key-one"}
            )
            assert created.status_code == 201
            import boto3

            client = boto3.client(
                "dynamodb",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="x",
                aws_secret_access_key="x",
            )
            assert "given-endpoint" in client.list_tables()["TableNames"]
            assert client.scan(TableName="given-endpoint")["Count"] >= 4  # key, user, 2 list entries
        finally:
            assert given.stop_as_make_does() == 0  # silent, and 0 (issue 20)
        other = httpx.get(f"{moto.url}/sessions", headers={"Authorization": "Bearer key-two"})
        assert other.status_code == 200 and other.json() == {"items": [], "next_cursor": None}
    finally:
        assert moto.stop_as_make_does() == 0
