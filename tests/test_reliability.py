"""Promises of docs/reliability.md: versions (ETag / If-Match), idempotent creates, request ids,
revocable keys, secrets kept out of logs and answers, user input only in placeholders."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import pytest

from chalicelib.rules import auth, kinds, lists, records
from chalicelib.rules.kinds import AGENTS
from chalicelib.shared import clock
from chalicelib.shared.errors import BadRequest, Conflict, ValidationFailed
from chalicelib.web.operations import OPERATIONS, Call, dispatch
from conftest import KEYS, FakeModel, InterceptedClient, model_provider
from conftest import scan_all as all_items

# --- versions: ETag and If-Match -----------------------------------------------------------------


@pytest.mark.parametrize(
    "plural, body", [("agents", {"name": "A", "about": "x"}), ("users", {"name": "U", "about": "x"})]
)
def test_get_answers_an_etag_that_if_match_must_name(api, plural, body):
    rid = api.post(f"/{plural}", {"name": "first"}).json["id"]
    got = api.get(f"/{plural}/{rid}")
    tag = got.headers["ETag"]
    assert tag == '"1"'
    patched = api.patch(f"/{plural}/{rid}", {"about": "second"}, headers={"If-Match": tag})
    assert patched.status_code == 200 and patched.headers["ETag"] == '"2"'
    assert api.get(f"/{plural}/{rid}").headers["ETag"] == '"2"'
    before = api.get(f"/{plural}/{rid}").json
    for method, payload in (("patch", {"about": "lost"}), ("put", body)):
        stale = getattr(api, method)(f"/{plural}/{rid}", payload, headers={"If-Match": tag})
        assert stale.status_code == 412, stale.json
        assert stale.json["error"]["code"] == "precondition_failed" and '"2"' in stale.json["error"]["message"]
    stale_delete = api.delete(f"/{plural}/{rid}", headers={"If-Match": tag})
    assert stale_delete.status_code == 412
    assert api.get(f"/{plural}/{rid}").json == before  # nothing changed
    assert api.put(f"/{plural}/{rid}", body, headers={"If-Match": 'W/"2", "7"'}).status_code == 200
    assert api.patch(f"/{plural}/{rid}", {"about": "any"}, headers={"If-Match": "*"}).status_code == 200
    assert api.delete(f"/{plural}/{rid}", headers={"If-Match": '"4"'}).status_code == 202
    assert api.get(f"/{plural}/{rid}").status_code == 404


@pytest.mark.real_engine
def test_if_match_on_a_session_and_its_concurrent_writer(api, table, session_id):
    tag = api.get(f"/sessions/{session_id}").headers["ETag"]
    # Another writer changes it first: the conditional PATCH must not overwrite that change.
    records.update(
        table,
        kinds.SESSIONS,
        "alice",
        session_id,
        kinds.SESSIONS.patch_model.model_validate({"metadata": {"other": 1}}),
        replace=False,
    )
    answer = api.patch(f"/sessions/{session_id}", {"metadata": {"mine": 1}}, headers={"If-Match": tag})
    assert answer.status_code == 412
    assert api.get(f"/sessions/{session_id}").json["metadata"] == {"db_uuid": "1234", "other": 1}
    # Without If-Match the merge is retried on the fresh version: both changes survive.
    assert api.patch(f"/sessions/{session_id}", {"metadata": {"mine": 1}}).status_code == 200
    assert api.get(f"/sessions/{session_id}").json["metadata"] == {"db_uuid": "1234", "other": 1, "mine": 1}
    assert "ETag" not in api.get("/sessions").headers


@pytest.mark.parametrize(
    "method, body",
    [
        ("patch", {}),
        ("patch", {"situation": None, "metadata": None, "token_budget": None}),  # what the SDK sends
        ("patch", {"situation": "hi", "metadata": {"db_uuid": "1234"}}),  # the values stored
        ("patch", {"metadata": {"never-set": None}}),  # removing an absent key
        ("put", {"situation": "hi", "metadata": {"db_uuid": "1234"}}),
    ],
    ids=["empty", "nulls", "equal", "remove-absent", "put-equal"],
)
def test_an_update_that_changes_nothing_writes_nothing(api, table, session_id, monkeypatch, method, body):
    """Issue 12, item 6 (chosen: 200 with the current version, nothing written): it bumped the
    version and updated_at, so other clients got spurious 412s and lists reordered."""
    before = api.get(f"/sessions/{session_id}")
    stored = all_items(table)
    writes = []
    monkeypatch.setattr(
        table,
        "client",
        InterceptedClient(
            table.client, lambda name, call: (writes.append(name) if "write" in name else None, call())[1]
        ),
    )
    answer = getattr(api, method)(f"/sessions/{session_id}", body, headers={"If-Match": before.headers["ETag"]})
    assert answer.status_code == 200, answer.json
    assert answer.headers["ETag"] == before.headers["ETag"] and answer.json["updated_at"] == before.json["updated_at"]
    assert writes == [] and all_items(table) == stored
    stale = api.patch(f"/sessions/{session_id}", {}, headers={"If-Match": '"999"'})
    assert stale.status_code == 412  # the precondition still holds


def test_an_update_that_changes_how_a_number_is_written_is_a_change(api, session_id):
    assert api.patch(f"/sessions/{session_id}", {"metadata": {"n": 1}}).headers["ETag"] == '"2"'
    assert api.patch(f"/sessions/{session_id}", {"metadata": {"n": 1}}).headers["ETag"] == '"2"'
    respelled = api.request("PATCH", f"/sessions/{session_id}", raw='{"metadata": {"n": 1.0}}')
    assert respelled.headers["ETag"] == '"3"' and b'"n":1.0' in api.get(f"/sessions/{session_id}").body


@pytest.mark.real_engine
def test_a_delete_racing_a_patch_leaves_no_stale_index_entry(api, table, session_id, monkeypatch):
    """The delete read version n; a PATCH moves the record (and its metadata entries) to n + 1
    before the delete's transaction. The delete must not remove the record with n's entries."""
    from chalicelib.tools import consistency

    real_delete = table.delete
    raced = []

    def delete_after_a_patch(developer, kind, record, terms, parents=()):
        if not raced:
            raced.append(1)
            records.update(
                table,
                kinds.SESSIONS,
                "alice",
                session_id,
                kinds.SESSIONS.patch_model.model_validate({"metadata": {"moved": True}}),
                replace=False,
            )
        return real_delete(developer, kind, record, terms, parents)

    monkeypatch.setattr(table, "delete", delete_after_a_patch)
    assert api.delete(f"/sessions/{session_id}").status_code == 202
    report = consistency.check(table, "alice")
    assert report["missing"] == [] and report["orphaned"] == []
    assert api.get(f"/sessions/{session_id}").status_code == 404


# --- idempotency ---------------------------------------------------------------------------------


@pytest.mark.real_engine
def test_the_same_key_and_body_create_once_and_answer_the_first_answer(api, table):
    headers = {"Idempotency-Key": "create-agent-1"}
    first = api.post("/agents", {"name": "Once"}, headers=headers)
    again = api.post("/agents", {"name": "Once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert [a["name"] for a in api.get("/agents").json["items"]] == ["Once"]
    other = api.post("/agents", {"name": "Other"}, headers=headers)
    assert other.status_code == 422 and other.json["error"]["details"][0]["field"] == "Idempotency-Key"
    assert len(api.get("/agents").json["items"]) == 1
    # Keys belong to a developer: bob's same key is his own.
    assert api.as_("bob").post("/agents", {"name": "Once"}, headers=headers).json["id"] != first.json["id"]
    receipts = [i for i in all_items(table) if "#idem#" in i["pk"]["S"]]
    assert len(receipts) == 2
    assert all(abs(int(r["expires_at"]["N"]) - (time.time() + 86400)) < 120 for r in receipts)
    assert not any("create-agent-1" in json.dumps(r) for r in receipts)  # stored hashed


@pytest.mark.real_engine
def test_replays_of_sessions_and_history_appends(api, agent_id, user_id):
    body = {"agent_id": agent_id, "user_id": user_id, "situation": "s"}
    sid = api.post("/sessions", body, headers={"Idempotency-Key": "s1"}).json["id"]
    assert api.post("/sessions", body, headers={"Idempotency-Key": "s1"}).json["id"] == sid
    assert len(api.get("/sessions").json["items"]) == 1
    append = {"messages": [{"role": "user", "content": f"m{n}"} for n in range(3)]}
    first = api.post(f"/sessions/{sid}/history", append, headers={"Idempotency-Key": "h1"})
    replay = api.post(f"/sessions/{sid}/history", append, headers={"Idempotency-Key": "h1"})
    assert replay.status_code == 201 and replay.json == first.json
    assert [m["content"] for m in api.get(f"/sessions/{sid}/history").json["items"]] == ["m0", "m1", "m2"]
    # The same key on another path is another request.
    assert api.post(f"/sessions/{sid}/history", append, headers={"Idempotency-Key": "s1"}).status_code == 422


def test_a_chat_replay_neither_calls_the_model_again_nor_stores_twice(api, session_id):
    fake = FakeModel(reply=lambda request: f"reply {len(fake.calls)}", usage=None)
    with model_provider(fake):
        body = {"messages": [{"role": "user", "content": "hi"}]}
        first = api.post(f"/sessions/{session_id}/chat", body, headers={"Idempotency-Key": "c1"})
        again = api.post(f"/sessions/{session_id}/chat", body, headers={"Idempotency-Key": "c1"})
        unremembered = {**body, "remember": False}
        third = api.post(f"/sessions/{session_id}/chat", unremembered, headers={"Idempotency-Key": "c2"})
        fourth = api.post(f"/sessions/{session_id}/chat", unremembered, headers={"Idempotency-Key": "c2"})
    assert first.status_code == again.status_code == 200 and again.json == first.json
    assert third.json == fourth.json and len(fake.calls) == 2
    assert [m["content"] for m in api.get(f"/sessions/{session_id}/history").json["items"]] == ["hi", "reply 1"]


@pytest.mark.real_engine
def test_racing_duplicates_create_exactly_one(calls_atomic):
    table = calls_atomic
    barrier, answers, failures = threading.Barrier(6), [], []

    def create():
        barrier.wait()
        try:
            answers.append(
                dispatch(
                    table,
                    OPERATIONS["agents.create"],
                    Call(developer="alice", body={"name": "Racer"}, idempotency_key="race"),
                )
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    ids = {answer.body.id if hasattr(answer.body, "id") else answer.body["id"] for answer in answers}
    assert len(answers) == 6 and len(ids) == 1
    replayed = [answer for answer in answers if answer.headers.get("Idempotent-Replayed")]
    assert len(replayed) == 5
    assert [a.id for a in lists.list_records(table, AGENTS, "alice")["items"]] == list(ids)


def test_a_failed_create_leaves_neither_record_nor_receipt(api, table, monkeypatch):
    def refuse(**kwargs):
        raise table.client.exceptions.TransactionCanceledException(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "x"},
                "CancellationReasons": [{"Code": "ValidationError"}],
            },
            "TransactWriteItems",
        )

    real = table.client.transact_write_items
    monkeypatch.setattr(table.client, "transact_write_items", refuse)
    assert api.post("/agents", {"name": "X"}, headers={"Idempotency-Key": "k"}).status_code >= 500
    monkeypatch.setattr(table.client, "transact_write_items", real)
    assert not [i for i in all_items(table) if "#idem#" in i["pk"]["S"] or "#agent#" in i["pk"]["S"]]
    assert api.post("/agents", {"name": "X"}, headers={"Idempotency-Key": "k"}).status_code == 201


@pytest.mark.real_engine
def test_an_expired_receipt_no_longer_replays(api, table, monkeypatch):
    first = api.post("/agents", {"name": "Old"}, headers={"Idempotency-Key": "k"}).json
    later = time.time() + 86400 + 5
    monkeypatch.setattr(clock, "epoch_seconds", lambda: later)  # the one clock of receipts and expiries
    second = api.post("/agents", {"name": "Old"}, headers={"Idempotency-Key": "k"})
    assert second.status_code == 201 and second.json["id"] != first["id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "has space"])
def test_a_malformed_key_is_400_and_creates_nothing(api, key):
    answer = api.post("/agents", {"name": "A"}, headers={"Idempotency-Key": key})
    assert answer.status_code == 400, answer.json
    assert "Idempotency-Key" in answer.json["error"]["message"]
    assert api.get("/agents").json["items"] == []


def test_a_malformed_key_is_refused_in_the_service_too(table):
    for key in ("tab\there", "é", ""):
        with pytest.raises(BadRequest):
            dispatch(
                table, OPERATIONS["agents.create"], Call(developer="alice", body={"name": "A"}, idempotency_key=key)
            )
    with pytest.raises(ValidationFailed):
        dispatch(table, OPERATIONS["agents.create"], Call(developer="alice", body={"name": 5}, idempotency_key="ok"))
    assert lists.list_records(table, AGENTS, "alice")["items"] == []


# --- request ids ---------------------------------------------------------------------------------


def test_every_answer_carries_a_request_id(api, agent_id):
    answers = [
        api.get(f"/agents/{agent_id}"),
        api.get("/agents/nope"),
        api.post("/agents", {"name": 1}),
        api.get("/agents", key=None),
        api.get("/nosuchroute"),
        api.get("/openapi.json", key=None),
    ]
    ids = [a.headers.get("X-Request-Id") for a in answers]
    assert all(ids) and len(set(ids)) == len(ids)


def test_an_unhandled_error_is_logged_with_the_request_id_and_answers_nothing_internal(api, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail /srv/app.py")

    monkeypatch.setattr(records, "get", explode)
    with caplog.at_level(logging.INFO, logger="sessions"):
        answer = api.get(f"/agents/{uuid.uuid4()}")
    assert answer.status_code == 500
    assert answer.json["error"]["code"] == "internal_error"
    assert "secret" not in answer.body.decode() and "/srv" not in answer.body.decode()
    logged = [r for r in caplog.records if r.name == "sessions" and r.levelno >= logging.ERROR]
    assert logged and logged[0].request_id == answer.headers["X-Request-Id"]


# --- keys ----------------------------------------------------------------------------------------


def test_a_revoked_key_is_refused_at_once(api, table):
    key = auth.create_key(table, "carol")
    carol = type(api)(api.client, key)
    assert carol.post("/agents", {"name": "C"}).status_code == 201
    listed = auth.list_keys(table, "carol")
    assert [k["prefix"] for k in listed] == [key[: auth.PREFIX_CHARS]]
    assert key not in json.dumps(all_items(table))  # only its hash is kept
    auth.revoke_key(table, "carol", key[: auth.PREFIX_CHARS])
    refused = carol.get("/agents")
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    assert auth.list_keys(table, "carol") == []
    assert api.get("/agents").status_code == 200  # alice's key unaffected
    with pytest.raises(Exception):
        auth.revoke_key(table, "carol", key[: auth.PREFIX_CHARS])  # nothing left to revoke


@pytest.mark.real_engine
def test_a_key_never_changes_owner(api, table):
    """Registering a key another developer holds is refused and changes nothing: the key still
    opens only its owner's data, and only its owner lists it (issue 12, item 3)."""
    alices = KEYS["alice"]
    before = all_items(table)
    with pytest.raises(auth.KeyHeldByAnother) as refused:
        auth.register_key(table, "bob", alices)
    assert refused.value.owner == "alice" and refused.value.status == 409
    assert all_items(table) == before
    assert table.developer_for_key(auth.hash_key(alices)) == "alice"
    assert [k["key_hash"] for k in auth.list_keys(table, "bob")] == [auth.hash_key(KEYS["bob"])]
    assert auth.register_key(table, "alice", alices) is False  # its owner again: nothing changes
    assert all_items(table) == before
    with pytest.raises(ValueError, match="gives developer 'bob' the key it gives developer 'alice'"):
        auth.parse_key_spec("alice:k,bob:k")
    assert auth.parse_key_spec("alice:k,alice:k") == [("alice", "k"), ("alice", "k")]


def test_a_revoke_that_deletes_nothing_says_so(table):
    """A listing entry whose key record is another developer's (written before keys were
    conditional): revoking it deletes nothing, and says so instead of "revoked"."""
    key = "sk_moved-key-0001"
    auth.register_key(table, "bob", key)
    table.client.put_item(
        TableName=table.table,
        Item={
            "pk": {"S": "dev#alice#apikeys"},
            "sk": {"S": f"{key[: auth.PREFIX_CHARS]}#{auth.hash_key(key)}"},
            "key_hash": {"S": auth.hash_key(key)},
            "prefix": {"S": key[: auth.PREFIX_CHARS]},
            "created_at": {"S": "x"},
        },
    )
    with pytest.raises(Conflict, match="nothing was revoked"):
        auth.revoke_key(table, "alice", key)
    assert table.developer_for_key(auth.hash_key(key)) == "bob"


def test_a_key_can_be_revoked_by_the_whole_key(table):
    first, second = auth.create_key(table, "dave"), auth.create_key(table, "dave")
    assert auth.revoke_key(table, "dave", second)["key_hash"] == auth.hash_key(second)
    assert table.developer_for_key(auth.hash_key(second)) is None
    assert table.developer_for_key(auth.hash_key(first)) == "dave"


def test_revoking_needs_exactly_one_matching_key_of_that_developer(table):
    first, second = auth.create_key(table, "dave"), auth.create_key(table, "dave")
    with pytest.raises(Exception):
        auth.revoke_key(table, "dave", "sk_")  # ambiguous
    with pytest.raises(Exception):
        auth.revoke_key(table, "alice", first[: auth.PREFIX_CHARS])  # not alice's
    auth.revoke_key(table, "dave", first[: auth.PREFIX_CHARS])
    assert table.developer_for_key(auth.hash_key(first)) is None
    assert table.developer_for_key(auth.hash_key(second)) == "dave"


def test_keys_never_reach_logs_or_answers(api, agent_id, caplog):
    secret = "sk_this-must-never-be-seen"
    with caplog.at_level(logging.DEBUG):
        answers = [
            api.get("/agents", key=secret),
            api.get("/agents", headers={"Authorization": secret}),
            api.get(f"/agents/{agent_id}"),
            api.post("/agents", {"name": secret}, key=KEYS["alice"] + "x"),
        ]
    for answer in answers:
        assert secret.encode() not in answer.body and KEYS["alice"].encode() not in answer.body
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert secret not in logged and KEYS["alice"] not in logged


# --- expressions ---------------------------------------------------------------------------------


def test_user_input_reaches_dynamodb_only_through_placeholders(api, table, monkeypatch):
    hostile = ["#evil", ":evil", "pk = :pk OR attribute_exists(sk)", "#sk) OR (", "size(pk) > :x", "REMOVE summary"]
    expressions = []

    def record(name, call):
        return call()

    class Recording(InterceptedClient):
        def __getattr__(self, name):
            attribute = getattr(self._client, name)
            if name == "exceptions" or not callable(attribute):
                return attribute

            def call(*args, **kwargs):
                for item in [kwargs, *kwargs.get("TransactItems", [])]:
                    for action in [item] if item is kwargs else item.values():
                        for field, value in action.items():
                            if field.endswith("Expression"):
                                expressions.append(value)
                return attribute(*args, **kwargs)

            return call

    monkeypatch.setattr(table, "client", Recording(table.client, record))
    agent = api.post(
        "/agents", {"name": hostile[2], "about": hostile[0], "metadata": {text: text for text in hostile}}
    ).json["id"]
    session = api.post(
        "/sessions", {"agent_id": agent, "situation": hostile[4], "metadata": {text: text for text in hostile}}
    ).json["id"]
    api.patch(f"/sessions/{session}", {"metadata": {hostile[3]: hostile[1]}, "situation": hostile[5]})
    for text in hostile:
        api.get("/sessions?metadata_filter=" + __import__("urllib.parse").parse.quote(json.dumps({text: text})))
    api.post(
        f"/sessions/{session}/history", {"messages": [{"role": "user", "content": hostile[2], "name": hostile[0]}]}
    )
    api.delete(f"/agents/{agent}")
    assert len(expressions) > 20
    for expression in expressions:
        for text in hostile:
            assert text not in expression, (text, expression)


# --- a transaction whose answer was lost ---------------------------------------------------------


@pytest.mark.parametrize("dynamodb", ["dynamodb-local"], indirect=True)  # moto keeps no tokens
def test_a_write_whose_answer_was_lost_is_sent_again_and_applied_once(api, table, agent_id):
    """The first attempt of each TransactWriteItems reaches DynamoDB and commits, then its answer
    is lost (a read timeout). botocore sends it again with the same ClientRequestToken (it fills
    one into every TransactWriteItems), and DynamoDB answers the repeat as it answered the first
    instead of running it again, whose conditions would fail on its own writes. The answer is the
    success, and nothing is written twice. Only the real engine keeps tokens."""
    from botocore.exceptions import ReadTimeoutError

    tokens: list[str] = []

    def lose_the_first_answer(request, **kwargs):
        tokens.append(json.loads(request.body)["ClientRequestToken"])
        if len(tokens) % 2 == 1:
            table.client._endpoint.http_session.send(request)  # DynamoDB commits it ...
            raise ReadTimeoutError(endpoint_url=request.url)  # ... and the answer is lost

    events = table.client.meta.events
    events.register("before-send.dynamodb.TransactWriteItems", lose_the_first_answer, unique_id="lose-answer")
    try:
        created = api.post("/sessions", {"agent_id": agent_id, "metadata": {"lost": "answer"}})
        appended = api.post(
            f"/sessions/{created.json['id']}/history", {"messages": [{"role": "user", "content": "hi"}]}
        )
    finally:
        events.unregister("before-send.dynamodb.TransactWriteItems", unique_id="lose-answer")
    assert created.status_code == 201, created.json
    assert appended.status_code == 201, appended.json
    assert len(tokens) == 4 and tokens[0] == tokens[1] and tokens[2] == tokens[3] and tokens[0] != tokens[2]
    listed = api.get("/sessions?metadata_filter=" + json.dumps({"lost": "answer"})).json["items"]
    assert [s["id"] for s in listed] == [created.json["id"]]
    assert [m["content"] for m in api.get(f"/sessions/{created.json['id']}/history").json["items"]] == ["hi"]


@pytest.mark.parametrize("dynamodb", ["dynamodb-local"], indirect=True)
def test_a_write_whose_every_answer_was_lost_says_its_outcome_is_unknown(api, table, agent_id):
    """Every attempt commits (the first) or is answered idempotently (the repeats), and every
    answer is lost: botocore gives up. The create was applied, so the answer must not be a plain
    "busy, retry": it is 503 write_outcome_unknown, and a retry with an Idempotency-Key is safe."""
    from botocore.exceptions import ReadTimeoutError

    def lose_every_answer(request, **kwargs):
        table.client._endpoint.http_session.send(request)
        raise ReadTimeoutError(endpoint_url=request.url)

    events = table.client.meta.events
    events.register("before-send.dynamodb.TransactWriteItems", lose_every_answer, unique_id="lose-all")
    try:
        body = {"agent_id": agent_id, "metadata": {"lost": "every answer"}}
        failed = api.post("/sessions", body, headers={"Idempotency-Key": "lost-1"})
    finally:
        events.unregister("before-send.dynamodb.TransactWriteItems", unique_id="lose-all")
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "1"
    assert failed.json["error"]["code"] == "write_outcome_unknown"
    assert "may have been applied" in failed.json["error"]["message"]
    listed = api.get("/sessions?metadata_filter=" + json.dumps({"lost": "every answer"})).json["items"]
    assert len(listed) == 1  # it was applied
    again = api.post("/sessions", body, headers={"Idempotency-Key": "lost-1"})
    assert again.status_code == 201 and again.json["id"] == listed[0]["id"]  # and the retry is safe
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_a_dynamodb_5xx_without_an_error_code_is_a_503(api, table, session_id, monkeypatch):
    """Seen with 30 concurrent direct invocations: a 5xx whose body names no error code was a 500
    internal_error. It is DynamoDB's fault, not ours: the documented 503 with Retry-After."""

    def bare_500(name, call):
        if name == "get_item" and bare_500.armed:
            raise table.client.exceptions.ClientError(
                {"Error": {}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "GetItem"
            )
        return call()

    bare_500.armed = False
    monkeypatch.setattr(table, "client", InterceptedClient(table.client, bare_500))
    bare_500.armed = True
    answer = api.get(f"/sessions/{session_id}")
    assert answer.status_code == 503, answer.json
    assert answer.json["error"]["code"] == "service_unavailable" and answer.headers["Retry-After"] == "1"
