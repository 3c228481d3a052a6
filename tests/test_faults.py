"""The service under DynamoDB faults: throttling, transaction conflicts, DynamoDB's own 500s and
timeouts, injected at the HTTP layer so that botocore's real retries (get_store()'s Config) run.

The promise (chalicelib/web/http.py, docs/design.md): every answer is a success or a 503 with
Retry-After, never a 500 nor any other code the fault caused; afterwards, once pending cascades
are finished, chalicelib/tools/consistency.py finds no half-written state; every acknowledged (2xx)
write reads back; a create answered 503 exists whole or not at all.

How faults get in: tests/fault_wire.py.

The workload below draws faults from a seeded random.Random: 12% of sends get one fault, and
1.5% start a burst of 4 to 12 faulted sends in a row (a throttling spike, an unreachable
endpoint), which is what outlives botocore's attempts.

Sleeping is recorded, not done (botocore's backoff, up to seconds per retry under throttling, and
the store's own jitter), so the file runs in seconds and the backoff is reported.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import botocore.endpoint
import pytest
from botocore.retries import standard
from fault_wire import BOTOCORE_RETRIES, KINDS, LOST_ANSWERS, Faulty, Sleeps, Wire, production_store

from chalicelib import store as store_module
from chalicelib.rules import deletes
from chalicelib.shared import backoff as backoff_module
from chalicelib.store import calls as store_calls
from chalicelib.tools import consistency
from conftest import mentioning

API_GATEWAY_SECONDS = 29


@pytest.fixture
def faulty(table, monkeypatch) -> Faulty:
    made = production_store()
    assert made.table == table.table
    wire = Wire(made.client)
    store_module.use_store(store_module.Store(wire.client, table.table))
    backoff, store_sleeps = Sleeps(), Sleeps()
    monkeypatch.setattr(botocore.endpoint, "time", backoff)
    monkeypatch.setattr(backoff_module, "time", store_sleeps)  # the store's and the rules' waits
    monkeypatch.setattr(deletes, "time", store_sleeps)
    return Faulty(wire, backoff, store_sleeps)


# --- the Config's bounds ------------------------------------------------------------------------


def attempts_of(config: Any) -> int:
    retries = config.retries
    return int(retries.get("total_max_attempts") or retries["max_attempts"] + 1)


def worst_backoff(attempts: int) -> float:
    """botocore's standard mode waits rand(0, 1) * min(scale * 2**i, 20 s) before retry i + 1,
    scale 1 s for throttling (25 ms otherwise for DynamoDB): the sum of those caps."""
    backoff = standard.ExponentialBackoff
    scale = backoff._DEFAULT_BACKOFF_CONFIG["throttling_base_scale"]
    return sum(min(scale * backoff._BASE**i, backoff._MAX_BACKOFF) for i in range(attempts - 1))


def worst_call_seconds(config: Any) -> float:
    """One DynamoDB call at its worst: every attempt waits out the connect and read timeouts, and
    every retry waits its longest backoff. (A lower bound, even: read_timeout bounds each socket
    read, not a whole answer that trickles in.)"""
    return attempts_of(config) * (config.connect_timeout + config.read_timeout) + worst_backoff(attempts_of(config))


def test_the_store_client_retries_in_standard_mode_with_bounded_attempts_and_timeouts(table):
    config = production_store().client.meta.config
    assert config.retries["mode"] == "standard"
    assert 2 <= attempts_of(config) <= 10
    # botocore's defaults are 60 s each: a stuck connection would outlive the API Gateway request.
    assert 0 < config.connect_timeout < API_GATEWAY_SECONDS
    assert 0 < config.read_timeout < API_GATEWAY_SECONDS


def test_one_dynamodb_call_at_its_worst_ends_inside_api_gateways_29_seconds(table):
    config = production_store().client.meta.config
    worst = worst_call_seconds(config)
    assert worst < API_GATEWAY_SECONDS, f"one call can take {worst:.0f} s"
    # A DELETE's cascade checks its budget between calls, so one more call may start just before
    # the budget runs out: budget + one call must fit too (docs/design.md "Cascading deletes").
    assert deletes.DELETE_BUDGET_SECONDS + worst <= API_GATEWAY_SECONDS, (
        f"{deletes.DELETE_BUDGET_SECONDS:.0f} s budget + {worst:.0f} s call"
    )


# --- one fault, retried -------------------------------------------------------------------------


def make_parents(api) -> tuple[str, str]:
    agent = api.post("/agents", {"name": "Sara", "about": "coach", "metadata": {"team": "a"}})
    user = api.post("/users", {"name": "Ann", "about": "user"})
    assert agent.status_code == user.status_code == 201
    return agent.json["id"], user.json["id"]


def by_tag(api, kind: str, tag: str) -> list[dict[str, Any]]:
    answer = api.get(f"/{kind}s?limit=1000&metadata_filter=" + json.dumps({"tag": tag}))
    assert answer.status_code == 200, answer.json
    return answer.json["items"]


def assert_consistent(table, *developers: str) -> None:
    for developer in developers:
        report = consistency.check(table, developer)
        assert (report["missing"], report["orphaned"], report["orphaned_messages"]) == ([], [], []), (
            f"{developer}: {report}"
        )


def assert_unavailable(answer) -> None:
    assert answer.status_code == 503, (answer.status_code, answer.json)
    assert answer.json["error"]["code"] in ("service_unavailable", "write_outcome_unknown", "deletion_in_progress")
    assert int(answer.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("kind", KINDS)
def test_one_fault_is_retried_and_the_create_answers_as_if_nothing_happened(api, table, faulty, kind):
    wire = faulty.wire
    agent_id, user_id = make_parents(api)
    faulty.reset_counts()
    wire.scripted["TransactWriteItems"] = [kind]

    created = api.post(
        "/sessions", {"agent_id": agent_id, "user_id": user_id, "situation": "hi", "metadata": {"tag": "one"}}
    )

    assert created.status_code == 201, created.json
    assert wire.injected == Counter({kind: 1})
    assert wire.sent["TransactWriteItems"] == 2, "the faulted transaction was sent again"
    first, second = wire.tokens
    if kind == "TransactionConflict":
        # Not botocore's to retry (a 400): the store sent a new transaction, after its own backoff.
        assert wire.calls["TransactWriteItems"] == 2 and first != second
        assert len(faulty.store_sleeps.each) == 1
    else:
        assert wire.calls["TransactWriteItems"] == 1 and first == second
        assert len(faulty.backoff.each) == 1
    assert wire.replayed == (1 if kind in LOST_ANSWERS else 0)  # applied once, answered on the retry
    [session] = by_tag(api, "session", "one")
    assert session["id"] == created.json["id"]
    assert_consistent(table, "alice")


@pytest.mark.parametrize("kind", BOTOCORE_RETRIES)
def test_one_fault_on_a_read_is_retried(api, faulty, kind):
    agent_id, _ = make_parents(api)
    faulty.reset_counts()
    faulty.wire.scripted["GetItem"] = [None, kind]  # the API key's read passes, the agent's faults once
    answer = api.get(f"/agents/{agent_id}")
    assert answer.status_code == 200 and answer.json["id"] == agent_id
    assert faulty.wire.sent["GetItem"] == 3


# --- faults past every retry --------------------------------------------------------------------


def agent_with_sessions(api, sessions: int = 3, messages: int = 30) -> tuple[str, list[str]]:
    agent_id, user_id = make_parents(api)
    ids = []
    for n in range(sessions):
        created = api.post("/sessions", {"agent_id": agent_id, "user_id": user_id, "metadata": {"n": n}})
        ids.append(created.json["id"])
        batch = [{"role": "user", "content": f"m{i}"} for i in range(messages)]
        assert api.post(f"/sessions/{ids[-1]}/history", {"messages": batch}).status_code == 201
    return agent_id, ids


SCENARIOS = {
    # name: (operation to fault, how the request is made)
    "create": "TransactWriteItems",
    "get": "GetItem",
    "list": "Query",
    "history": "Query",
    "cascade": "BatchWriteItem",
}


def run_scenario(api, faulty: Faulty, name: str, kind: str):
    """Faults `kind` on every send of the scenario's operation; (answer, agent id, session ids)."""
    wire = faulty.wire
    agent_id, sessions = agent_with_sessions(api, sessions=2, messages=3)
    faulty.reset_counts()
    operation = SCENARIOS[name]
    if name == "get":
        wire.scripted["GetItem"] = [None]  # the API key's read passes
    wire.persistent[operation] = kind
    if name == "create":
        answer = api.post(
            "/sessions", {"agent_id": agent_id, "metadata": {"tag": "lost"}}, headers={"Idempotency-Key": "create-1"}
        )
    elif name == "get":
        answer = api.get(f"/agents/{agent_id}")
    elif name == "list":
        answer = api.get(f"/sessions?agent_id={agent_id}")
    elif name == "history":
        answer = api.get(f"/sessions/{sessions[0]}/history")
    else:
        answer = api.delete(f"/agents/{agent_id}")
    return answer, agent_id, sessions


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("kind", ["Throttling", "ReadTimeout"])
def test_faults_past_every_retry_answer_503_with_retry_after(api, faulty, name, kind):
    assert_unavailable(run_scenario(api, faulty, name, kind)[0])


def test_faults_past_every_retry_on_the_api_key_read_answer_503_with_retry_after(api, faulty):
    faulty.wire.persistent["GetItem"] = "ProvisionedThroughputExceeded"
    assert_unavailable(api.get("/agents"))
    attempts = attempts_of(faulty.wire.client.meta.config)
    assert faulty.wire.sent["GetItem"] == attempts
    assert 0 < faulty.backoff.total <= worst_backoff(attempts)


@pytest.mark.parametrize("kind", KINDS)
def test_a_create_whose_faults_outlive_every_retry_is_whole_or_absent_and_its_retry_makes_one(api, table, faulty, kind):
    wire = faulty.wire
    failed, agent_id, _ = run_scenario(api, faulty, "create", kind)
    assert failed.status_code == 503
    if kind == "TransactionConflict":
        assert wire.calls["TransactWriteItems"] == store_calls.TRANSACT_ATTEMPTS
    else:
        attempts = attempts_of(wire.client.meta.config)
        assert wire.sent["TransactWriteItems"] == attempts and wire.calls["TransactWriteItems"] == 1
        assert faulty.backoff.total <= worst_backoff(attempts)
    found = by_tag(api, "session", "lost")
    # Refused: nothing was written. Applied with its answer lost: written whole, exactly once.
    assert len(found) == (1 if kind in LOST_ANSWERS else 0)
    # The answer never says "busy" about a write that may have been applied: DynamoDB refused
    # for sure (throttling, a conflict), or the outcome is unknown (timeouts, its 500s).
    assert failed.json["error"]["code"] == (
        "service_unavailable"
        if kind in ("ProvisionedThroughputExceeded", "Throttling", "TransactionConflict")
        else "write_outcome_unknown"
    ), failed.json
    assert_consistent(table, "alice")

    wire.on = False
    retried = api.post(
        "/sessions", {"agent_id": agent_id, "metadata": {"tag": "lost"}}, headers={"Idempotency-Key": "create-1"}
    )
    assert retried.status_code == 201
    [session] = by_tag(api, "session", "lost")
    assert session["id"] == retried.json["id"]
    assert retried.headers.get("Idempotent-Replayed") == ("true" if kind in LOST_ANSWERS else None)
    assert_consistent(table, "alice")


CASCADE_FAULTS = ["Throttling", "ReadTimeout", "ConnectTimeout"]


@pytest.mark.parametrize("kind", CASCADE_FAULTS)
def test_a_cascade_cut_by_faults_leaves_nothing_readable_and_the_retry_and_sweep_finish_it(api, table, faulty, kind):
    failed, agent_id, sessions = run_scenario(api, faulty, "cascade", kind)
    assert failed.status_code == 503
    assert api.get(f"/agents/{agent_id}").status_code == 404, "the agent went atomically, before its cascade"
    assert api.get("/agents").json["items"] == []
    assert_consistent(table, "alice")  # each session is there whole, or gone with its purge pending
    assert table.pending_purges("alice")

    faulty.wire.persistent.clear()
    # the agent went with the first DELETE: the repeat answers as a GET would (issue 20), once its
    # cascade has gone on as far as it can
    assert api.delete(f"/agents/{agent_id}").status_code == 404
    assert [api.get(f"/sessions/{s}").status_code for s in sessions] == [404, 404]
    deletes.finish_pending_deletes(table, "alice")
    assert mentioning(table, agent_id, *sessions) == set()
    assert table.pending_purges("alice") == []
    assert_consistent(table, "alice")


@pytest.mark.parametrize("kind", CASCADE_FAULTS)
def test_a_resumed_cascade_answers_only_when_everything_is_gone(api, table, faulty, kind):
    failed, agent_id, sessions = run_scenario(api, faulty, "cascade", kind)
    assert failed.status_code == 503
    faulty.wire.persistent.clear()
    assert api.delete(f"/agents/{agent_id}").status_code == 404  # gone since the first (issue 20)
    assert mentioning(table, agent_id, *sessions) == set(), "the repeat finished the cascade first"
    assert table.pending_purges("alice") == []


# --- a workload under faults ----------------------------------------------------------------------

FAULTED = (503,)  # the only answer a fault may cause


@dataclass
class Rec:
    """What the client knows of one record it created and was answered 2xx for."""

    kind: str
    id: str
    developer: str
    tag: str
    team: str
    parents: tuple[Rec, ...] = ()
    deleting: str = "no"  # "no"; "doubt": a delete answered a fault; "gone": 202 or 404
    text: str | None = None  # name (agents, users) / situation (sessions) if known
    must: dict[str, Any] = field(default_factory=dict)  # metadata that must be there
    must_not: set[str] = field(default_factory=set)  # metadata keys that must not
    exact: bool = True  # metadata is exactly `must`
    history: list[str] = field(default_factory=list)  # acknowledged messages since the last clear
    doubtful: list[tuple[str, ...]] = field(default_factory=list)  # appends answered with a fault
    may_remain: set[str] = field(default_factory=set)  # messages a faulted clear may have left

    @property
    def path(self) -> str:
        return f"/{self.kind}s/{self.id}"

    @property
    def state(self) -> str:
        """Its own fate and its parents': a parent's delete cascades."""
        states = [self.deleting] + [parent.state for parent in self.parents]
        return "gone" if "gone" in states else "doubt" if "doubt" in states else "no"


@dataclass
class Unsure:
    """A create answered with a fault: its id is unknown; its tag finds it, if it exists."""

    kind: str
    developer: str
    tag: str
    body: dict[str, Any]
    key: str | None
    parents: tuple[Rec, ...]
    code: str  # the error code it was answered with


TEXT = {"agent": "name", "user": "name", "session": "situation"}


class Workload:
    def __init__(self, api, faulty: Faulty, seed: int) -> None:
        self.apis = {developer: api.as_(developer) for developer in ("alice", "bob")}
        self.faulty = faulty
        self.rng = random.Random(seed)
        self.records: list[Rec] = []
        self.unsure: list[Unsure] = []
        self.answers: list[tuple[str, str, int, Any, dict[str, str]]] = []  # method, path, status, body, headers
        self.step = 0

    # requests ------------------------------------------------------------------------------------

    def send(
        self,
        developer: str,
        method: str,
        path: str,
        body: Any = None,
        expect: set[int] = frozenset(),
        headers: dict[str, str] | None = None,
    ):
        answer = self.apis[developer].request(method, path, body, headers=headers)
        self.answers.append((method, path, answer.status_code, answer.json, dict(answer.headers)))
        allowed = set(expect) | set(FAULTED)
        assert answer.status_code in allowed, (
            f"step {self.step}: {method} {path} {json.dumps(body)[:200]} answered {answer.status_code} "
            f"{answer.json}; expected one of {sorted(allowed)}"
        )
        return answer

    @staticmethod
    def expect(ok: int, *records: Rec) -> set[int]:
        states = {record.state for record in records}
        if "gone" in states:
            return {404}
        return {ok, 404} if "doubt" in states else {ok}

    def pick(self, developer: str, kinds: tuple[str, ...], gone_too: float = 0.05) -> Rec | None:
        mine = [r for r in self.records if r.developer == developer and r.kind in kinds]
        alive = [r for r in mine if r.state != "gone"]
        pool = mine if (not alive or self.rng.random() < gone_too) else alive
        return self.rng.choice(pool) if pool else None

    # operations ----------------------------------------------------------------------------------

    def create(self, developer: str, kind: str) -> None:
        tag, team = f"t{self.step}", self.rng.choice(["red", "blue", "green"])
        body: dict[str, Any] = {"metadata": {"tag": tag, "team": team, "n": self.step}}
        parents: tuple[Rec, ...] = ()
        if kind == "session":
            agent = self.pick(developer, ("agent",))
            user = self.pick(developer, ("user",))
            if agent is None:
                return
            parents = (agent,) + ((user,) if user and self.rng.random() < 0.8 else ())
            body.update({f"{p.kind}_id": p.id for p in parents}, situation=f"s{self.step}")
        else:
            body.update(name=f"{kind} {self.step}", about="under faults")
        key = f"key-{self.step}" if self.rng.random() < 0.3 else None
        answer = self.send(
            developer,
            "POST",
            f"/{kind}s",
            body,
            self.expect(201, *parents),
            headers={"Idempotency-Key": key} if key else None,
        )
        if answer.status_code == 201:
            self.records.append(
                Rec(
                    kind,
                    answer.json["id"],
                    developer,
                    tag,
                    team,
                    parents,
                    text=body.get(TEXT[kind]),
                    must=dict(body["metadata"]),
                )
            )
        elif answer.status_code in FAULTED:
            self.unsure.append(Unsure(kind, developer, tag, body, key, parents, answer.json["error"]["code"]))

    def patch(self, record: Rec) -> None:
        added = f"p{self.step}"
        metadata: dict[str, Any] = {added: self.step}
        removable = sorted(k for k in record.must if k.startswith("p"))
        removed = self.rng.choice(removable) if removable and self.rng.random() < 0.4 else None
        if removed:
            metadata[removed] = None
        answer = self.send(record.developer, "PATCH", record.path, {"metadata": metadata}, self.expect(200, record))
        if answer.status_code == 200:
            record.must[added] = self.step
            if removed:
                del record.must[removed]
                record.must_not.add(removed)
        elif answer.status_code in FAULTED:
            record.exact = False
            record.must.pop(removed, None)

    def put(self, record: Rec) -> None:
        metadata = {"tag": record.tag, "team": record.team, f"u{self.step}": self.step}
        text = f"{TEXT[record.kind]} {self.step}"
        body = {"situation": text} if record.kind == "session" else {"name": text, "about": "replaced"}
        answer = self.send(
            record.developer, "PUT", record.path, {**body, "metadata": metadata}, self.expect(200, record)
        )
        if answer.status_code == 200:
            record.must_not |= set(record.must) - set(metadata)
            record.must, record.exact, record.text = metadata, True, text
        elif answer.status_code in FAULTED:
            record.must = {"tag": record.tag, "team": record.team}
            record.exact, record.text = False, None

    def append(self, session: Rec) -> None:
        contents = tuple(f"a{self.step}.{n}" for n in range(self.rng.randint(1, 4)))
        body = {"messages": [{"role": self.rng.choice(["user", "assistant"]), "content": c} for c in contents]}
        answer = self.send(session.developer, "POST", f"{session.path}/history", body, self.expect(201, session))
        if answer.status_code == 201:
            assert [m["content"] for m in answer.json["items"]] == list(contents)
            session.history += contents
        elif answer.status_code in FAULTED:
            session.doubtful.append(contents)

    def clear(self, session: Rec) -> None:
        answer = self.send(session.developer, "DELETE", f"{session.path}/history", None, self.expect(202, session))
        if answer.status_code in FAULTED:
            session.may_remain |= set(session.history).union(*session.doubtful)
        elif answer.status_code == 202:
            session.may_remain = set()
        if answer.status_code != 404:
            session.history, session.doubtful = [], []

    def delete(self, record: Rec) -> None:
        answer = self.send(record.developer, "DELETE", record.path, None, self.expect(202, record))
        if answer.status_code in (202, 404):
            record.deleting = "gone"
        elif answer.status_code in FAULTED and record.deleting == "no":
            record.deleting = "doubt"
        if answer.status_code == 503:
            assert answer.headers.get("Retry-After")

    def read(self, record: Rec) -> None:
        answer = self.send(record.developer, "GET", record.path, None, self.expect(200, record))
        if answer.status_code == 200:
            check_record(record, answer.json)

    def read_history(self, session: Rec) -> None:
        answer = self.send(
            session.developer, "GET", f"{session.path}/history?limit=1000", None, self.expect(200, session)
        )
        if answer.status_code == 200:
            check_history(session, [m["content"] for m in answer.json["items"]])

    def listing(self, developer: str) -> None:
        kind = self.rng.choice(["agent", "user", "session"])
        params: dict[str, str] = {
            "limit": "1000",
            "sort_by": self.rng.choice(["created_at", "updated_at"]),
            "order": self.rng.choice(["asc", "desc"]),
        }
        conditions: dict[str, Any] = {}
        if self.rng.random() < 0.5:
            conditions["team"] = self.rng.choice(["red", "blue", "green"])
        parent = self.pick(developer, ("agent", "user")) if kind == "session" and self.rng.random() < 0.5 else None
        if parent:
            params[f"{parent.kind}_id"] = parent.id
        if conditions:
            params["metadata_filter"] = json.dumps(conditions)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        answer = self.send(developer, "GET", f"/{kind}s?{query}", None, {200})
        if answer.status_code != 200:
            return
        items = answer.json["items"]
        ids = [item["id"] for item in items]
        assert len(ids) == len(set(ids)) and answer.json["next_cursor"] is None
        order = [(item[params["sort_by"]], item["id"]) for item in items]
        assert order == sorted(order, reverse=params["order"] == "desc")
        for item in items:
            assert all(item["metadata"].get(k) == v for k, v in conditions.items())
            if parent:
                assert item[f"{parent.kind}_id"] == parent.id
        # Every record that certainly exists and matches is listed (lists read the index).
        for record in self.records:
            if (
                record.developer == developer
                and record.kind == kind
                and record.state == "no"
                and all(record.team == v for v in conditions.values())
                and (parent is None or parent in record.parents)
            ):
                assert record.id in ids, f"step {self.step}: {record.kind} {record.id} missing from {query}"

    # the run -------------------------------------------------------------------------------------

    def run(self, steps: int) -> None:
        operations = [
            ("agent", 8),
            ("user", 6),
            ("session", 14),
            ("patch", 12),
            ("put", 5),
            ("append", 16),
            ("history", 6),
            ("read", 6),
            ("list", 9),
            ("delete session", 4),
            ("delete parent", 3),
            ("clear", 3),
        ]
        names, weights = zip(*operations)
        for self.step in range(steps):
            developer = self.rng.choice(["alice", "alice", "bob"])
            name = self.rng.choices(names, weights)[0]
            if name in ("agent", "user", "session"):
                self.create(developer, name)
            elif name == "list":
                self.listing(developer)
            elif name in ("patch", "put", "read"):
                record = self.pick(developer, ("agent", "user", "session"))
                if record:
                    getattr(self, name)(record)
            elif name in ("append", "history", "clear", "delete session"):
                session = self.pick(developer, ("session",))
                if session:
                    {
                        "append": self.append,
                        "history": self.read_history,
                        "clear": self.clear,
                        "delete session": self.delete,
                    }[name](session)
            else:
                parent = self.pick(developer, ("agent", "user"), gone_too=0.1)
                if parent:
                    self.delete(parent)


def check_record(record: Rec, answer: dict[str, Any]) -> None:
    metadata = answer["metadata"]
    assert {k: metadata.get(k) for k in record.must} == record.must, (record.id, metadata, record.must)
    assert not record.must_not & metadata.keys(), (record.id, metadata, record.must_not)
    if record.exact:
        assert metadata == record.must
    if record.text is not None:
        assert answer[TEXT[record.kind]] == record.text
    for parent in record.parents:
        assert answer[f"{parent.kind}_id"] == parent.id


def check_history(session: Rec, contents: list[str]) -> None:
    """Acknowledged appends are there, in order; an append answered with a fault is there whole
    (contiguous, in order) or not at all; nothing else is there, nothing twice."""
    assert len(contents) == len(set(contents)), f"a message twice in {session.id}: {contents}"
    known = set(session.history).union(session.may_remain, *session.doubtful)
    assert set(contents) <= known, f"unknown messages in {session.id}: {set(contents) - known}"
    assert [c for c in contents if c in set(session.history)] == session.history, (
        f"acknowledged messages lost or out of order in {session.id}"
    )
    for group in session.doubtful:
        present = [c for c in contents if c in group]
        if present:
            start = contents.index(group[0]) if group[0] in contents else -1
            assert contents[start : start + len(group)] == list(group), (
                f"append {group} half there in {session.id}: {contents}"
            )


@dataclass
class Outcome:
    workload: Workload
    seconds: float
    statuses: Counter


def run_workload(api, faulty: Faulty, seed: int, steps: int) -> Outcome:
    wire = faulty.wire
    wire.rng = random.Random(seed)
    wire.rate, wire.burst_rate = 0.12, 0.015
    began = time.monotonic()
    workload = Workload(api, faulty, seed)
    workload.run(steps)
    wire.on = False
    return Outcome(workload, time.monotonic() - began, Counter(status for _, _, status, _, _ in workload.answers))


def route(method: str, path: str) -> str:
    shape = "/".join("{id}" if len(part) == 36 else part for part in path.split("?")[0].split("/"))
    return f"{method} {shape}"


def fault_report(outcome: Outcome, faulty: Faulty) -> str:
    wire = faulty.wire
    sends, faults = sum(wire.sent.values()), sum(wire.injected.values())
    faulted = Counter(f"{route(m, p)} {s}" for m, p, s, _, _ in outcome.workload.answers if s in FAULTED)
    unsure = outcome.workload.unsure
    return (
        f"{len(outcome.workload.answers)} requests in {outcome.seconds:.1f} s, answers {dict(outcome.statuses)}; "
        f"faulted answers by route {dict(faulted)}; {len(unsure)} creates answered with a fault "
        f"({sum(u.key is not None for u in unsure)} with an Idempotency-Key); "
        f"{sends} DynamoDB sends, {faults} faults ({faults / sends:.0%}) {dict(wire.injected)}; "
        f"{wire.retries} absorbed by botocore retries, {wire.replayed} lost answers replayed by token; "
        f"{len(faulty.store_sleeps.each)} store/service retries; "
        f"backoff {faulty.backoff.total:.1f} s (botocore) + {faulty.store_sleeps.total:.2f} s (store), not slept"
    )


SEED, STEPS = 20240611, 320


def test_under_faults_nothing_is_half_written_and_every_acknowledged_write_is_there(api, table, faulty):
    """One workload, two promises: every answer is a success or a 503 with Retry-After (never a
    500), and nothing is half-written (was two tests running the same 320 steps: 11 s twice)."""
    outcome = run_workload(api, faulty, SEED, STEPS)
    workload = outcome.workload
    print(fault_report(outcome, faulty))
    errors = [(method, path, status) for method, path, status, _, _ in workload.answers if status >= 500]
    assert all(status == 503 for _, _, status in errors), [e for e in errors if e[2] != 503][:10]
    # The run proved something: faults were injected, absorbed, and some outlived every retry.
    assert sum(faulty.wire.injected.values()) > 100 and faulty.wire.retries > 50
    assert sum(outcome.statuses[s] for s in FAULTED) >= 5
    assert len(workload.records) > 40 and any(r.deleting == "gone" for r in workload.records)
    for _, _, status, body, headers in workload.answers:
        if status == 503:
            assert body["error"]["code"] in ("service_unavailable", "write_outcome_unknown", "deletion_in_progress")
            assert headers.get("Retry-After")

    # Faults off. Finish what faults cut short, as the sweep would, then nothing is half-written.
    for developer in ("alice", "bob"):
        deletes.finish_pending_deletes(table, developer)
        assert table.pending_purges(developer) == []
    assert_consistent(table, "alice", "bob")

    apis = workload.apis
    deleted = []
    for record in workload.records:
        answer = apis[record.developer].get(record.path)
        if record.state == "no":
            assert answer.status_code == 200, f"acknowledged {record.kind} {record.id} is gone"
        if answer.status_code == 200:
            assert record.state != "gone"
            check_record(record, answer.json)
            if record.kind == "session":
                history = apis[record.developer].get(f"{record.path}/history?limit=1000")
                check_history(record, [m["content"] for m in history.json["items"]])
        else:
            assert answer.status_code == 404 and record.state != "no"
            deleted.append(record.id)
    assert mentioning(table, *deleted) == set(), "something of a deleted record is left"

    # A create answered with a fault exists whole or not at all; sent again with its key, once.
    for unsure in workload.unsure:
        api_ = apis[unsure.developer]
        found = by_tag(api_, unsure.kind, unsure.tag)
        assert len(found) <= 1
        # A create that was applied was never answered "busy, retry": it said its outcome is unknown.
        assert not found or unsure.code == "write_outcome_unknown", (unsure.kind, unsure.tag, unsure.code)
        if unsure.key is None:
            continue
        again = api_.post(f"/{unsure.kind}s", unsure.body, headers={"Idempotency-Key": unsure.key})
        parents_alive = all(p.state == "no" for p in unsure.parents)
        assert again.status_code in ({201} if parents_alive else {201, 404})
        now = by_tag(api_, unsure.kind, unsure.tag)
        if found or parents_alive:
            assert again.status_code == 201 and [r["id"] for r in now] == [again.json["id"]]
            assert (again.headers.get("Idempotent-Replayed") == "true") == bool(found)
    assert_consistent(table, "alice", "bob")
