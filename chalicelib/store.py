"""The DynamoDB store: the only module that knows keys, expressions and boto3 shapes.

It speaks in records (plain dicts of a resource's fields) and named exceptions; the service
layer above never sees an attribute value or an error code. The layout (docs/design.md):

    pk                                  sk                          what
    apikey#<sha256>                     #record                     an API key -> developer_id
    dev#<d>#apikeys                     <prefix>#<sha256>           the developer's keys, for listing
    dev#<d>#<kind>#<id>                 #record                     an agent, user or session
    dev#<d>#session#<id>                msg#<created_at>#<a>#<n>    one history message (append a, n-th)
    dev#<d>#<kind>s#<term>#by_created   <created_at>#<id>           index entry (chalicelib/index.py)
    dev#<d>#<kind>s#<term>#by_updated   <updated_at>#<id>           index entry, fixed terms only
    dev#<d>#purge                       <kind>#<id>                 a cascading delete under way
    dev#<d>#idem#<sha256 of key>        #record                     an Idempotency-Key's receipt (TTL)

Every item of a developer carries `dev#<d>#` in its key, so no query can reach another's data.
A record and its index entries change in one transaction, so they never disagree. A history
append is a change of its session too: its `updated_at` and update-order entries move in the
append's transaction, and the record keeps the position of the newest message (LAST_POSITION),
which the next append is stamped after.
"""
from __future__ import annotations

import contextvars
import os
import random
import time
from collections.abc import Iterable, Iterator
from decimal import Context, Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from . import index, schema, telemetry

RECORD = "#record"
MESSAGE_PREFIX = "msg#"
# On a session record: the position of the newest message ever appended ("" before the first;
# absent on sessions written before it was kept, whose newest message a Query finds instead).
LAST_POSITION = "last_position"
PK, SK = schema.PARTITION_KEY, schema.SORT_KEY
BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
TRANSACT_ATTEMPTS = 5
_THROTTLED = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})
_RETRYABLE_CANCELLATIONS = _THROTTLED | {"TransactionConflict"}

# The IAM actions the request path needs on the table, and no more (infra/ grants exactly these;
# tests/test_iam_actions.py checks every call the API makes is covered). TransactWriteItems has no
# action of its own: IAM authorizes each Put, Delete and ConditionCheck in it. Scan is not here:
# only operators' tools (consistency check, admin export) scan, with their own credentials.
RUNTIME_IAM_ACTIONS = (
    "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
    "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem",
    "dynamodb:BatchWriteItem",
)

class _ExactDeserializer(TypeDeserializer):
    """Numbers as the exact Decimal of DynamoDB's text. boto3's own rounds through a 38-digit
    context that traps rounding, so a number DynamoDB hands back spelled out in full (1E+40 as
    forty-one digits) would raise (boto/boto3#2500)."""

    def _deserialize_n(self, value: str) -> Decimal:
        return Decimal(value)

    def _deserialize_ns(self, value: list[str]) -> set[Decimal]:
        return {Decimal(v) for v in value}


_serializer = TypeSerializer()
_deserializer = _ExactDeserializer()


class StoreError(Exception):
    """Base of the store's named outcomes."""


class MissingRecord(StoreError):
    """A record a write depends on is absent (or was deleted meanwhile)."""

    def __init__(self, kind: str, record_id: str) -> None:
        super().__init__(f"{kind} {record_id} not found")
        self.kind = kind
        self.record_id = record_id


class VersionConflict(StoreError):
    """The record changed between our read and our conditional write. `current` is the record
    as the failed condition saw it, when DynamoDB handed it back (None: read it again)."""

    def __init__(self, current: dict[str, Any] | None = None) -> None:
        super().__init__("the record changed meanwhile")
        self.current = current


class KeyTaken(StoreError):
    """An API key (by hash) is registered already, to `owner`."""

    def __init__(self, owner: str | None) -> None:
        super().__init__(f"the key is registered already, to developer {owner!r}")
        self.owner = owner


class ReceiptTaken(StoreError):
    """An idempotency receipt with this key was written first by another request."""


# --- keys -------------------------------------------------------------------------------------

API_KEY_PREFIX = "apikey#"


def developer_prefix(developer: str) -> str:
    """What every partition key of a developer's items starts with (API key records aside)."""
    return f"dev#{developer}#"


def _api_key_pk(key_hash: str) -> str:
    return f"{API_KEY_PREFIX}{key_hash}"


def _record_pk(developer: str, kind: str, record_id: str) -> str:
    return f"dev#{developer}#{kind}#{record_id}"


def _index_pk(developer: str, kind: str, term: str, order: str) -> str:
    return f"dev#{developer}#{kind}s#{term}#by_{order.removesuffix('_at')}"


def _receipt_key(developer: str, key_hash: str) -> dict[str, Any]:
    return _key(f"dev#{developer}#idem#{key_hash}", RECORD)


def _keys_pk(developer: str) -> str:
    return f"dev#{developer}#apikeys"


def _purge_pk(developer: str) -> str:
    return f"dev#{developer}#purge"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {PK: {"S": pk}, SK: {"S": sk}}


def _record_key(developer: str, kind: str, record_id: str) -> dict[str, Any]:
    return _key(_record_pk(developer, kind, record_id), RECORD)


def _entry_key(developer: str, kind: str, term: str, order: str, record: dict[str, Any]) -> dict[str, Any]:
    return _key(_index_pk(developer, kind, term, order), sort_key(record, order))


def sort_key(record: dict[str, Any], order: str) -> str:
    """Where a record sits in an order: the sort field, then the id to break ties (both fixed width,
    so they sort as strings). Cursors carry this too."""
    return f"{record[order]}#{record['id']}"


def message_positions(messages: list[dict[str, Any]]) -> list[str]:
    """Sort keys of one append's messages: its time, its first message's id, each one's place."""
    group = messages[0]["id"]
    return [f"{MESSAGE_PREFIX}{m['created_at']}#{group}#{n:03d}" for n, m in enumerate(messages)]


def id_in(key: str) -> str:
    """The record id at the end of a sort key."""
    return key.rsplit("#", 1)[1]


def entry_keys(developer: str, kind: str, record: dict[str, Any], terms: Iterable[str]) -> list[dict[str, Any]]:
    """The keys of every index entry a record has under these terms."""
    return [_entry_key(developer, kind, term, order, record) for term in terms for order in index.orders(term)]


def update_order_keys(developer: str, kind: str, record: dict[str, Any], terms: Iterable[str]) -> list[dict[str, Any]]:
    """The keys of a record's entries that are ordered by updated_at (its fixed terms')."""
    return [_entry_key(developer, kind, term, "updated_at", record) for term in terms
            if "updated_at" in index.orders(term)]


def _still(record: dict[str, Any]) -> dict[str, Any]:
    """The condition that the stored record is still the one read: the same version and the same
    updated_at (a history append moves updated_at, and the entries with it, but not the version)."""
    return {"ConditionExpression": "#version = :version AND #updated = :updated",
            "ExpressionAttributeNames": {"#version": "version", "#updated": "updated_at"},
            "ExpressionAttributeValues": {":version": {"N": str(record["version"])},
                                          ":updated": {"S": record["updated_at"]}}}


def _only_conflicts(exc: Any) -> bool:
    codes = {reason.get("Code") for reason in exc.response.get("CancellationReasons") or []}
    return bool(codes) and codes <= {"TransactionConflict", "None", None}


def _key_tuple(key: dict[str, Any]) -> tuple[str, str]:
    return key[PK]["S"], key[SK]["S"]


def _serialize(values: dict[str, Any]) -> dict[str, Any]:
    # None means "absent": omitting it keeps items small and reads default it back to None.
    return {k: _serializer.serialize(_storable(v)) for k, v in values.items() if v is not None}


def _storable(value: Any) -> Any:
    """DynamoDB hands numbers back spelled out (1E+40 as forty-one digits), which boto3 then
    refuses to write; such a number is written again in its shortest exact form."""
    if isinstance(value, Decimal):
        digits = len(value.as_tuple().digits)
        return value.normalize(Context(prec=digits)) if digits > 38 else value   # exact: only zeros go
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items() if k not in (PK, SK)}


# --- the store ----------------------------------------------------------------------------------

# --- writes whose outcome is unknown -----------------------------------------------------------------

_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
_unsettled: contextvars.ContextVar[bool] = contextvars.ContextVar("unsettled write", default=False)


def _write_sent(model: Any, **_: Any) -> None:
    if model.name in _WRITES:
        _unsettled.set(True)


def _write_answered(http_response: Any, model: Any, **_: Any) -> None:
    # DynamoDB answered. Below 500 the answer says what happened (done, or refused: a condition,
    # a conflict, throttling); a 500 may come after the write was applied. A timeout or a dropped
    # connection (botocore's after-call-error) leaves the write unsettled too.
    if model.name in _WRITES and http_response.status_code < 500:
        _unsettled.set(False)


def begin_request() -> None:
    """A request starts with no write in flight (chalicelib/outcomes.py)."""
    _unsettled.set(False)


def write_outcome_unknown() -> bool:
    """Whether this request's last write was sent and never answered for sure: it may have been
    applied. botocore retried it already (a transaction with the same ClientRequestToken)."""
    return _unsettled.get()


class Store:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        telemetry.instrument(client)   # each request's log line counts its DynamoDB calls
        client.meta.events.register("before-call.dynamodb", _write_sent, unique_id="sessions-write-sent")
        client.meta.events.register("after-call.dynamodb", _write_answered, unique_id="sessions-write-answered")

    # API keys ----------------------------------------------------------------------------------

    def developer_for_key(self, key_hash: str) -> str | None:
        item = self.client.get_item(TableName=self.table, Key=_key(_api_key_pk(key_hash), RECORD),
                                    ConsistentRead=True).get("Item")
        return item["developer_id"]["S"] if item else None

    def put_api_key(self, key_hash: str, developer: str, prefix: str = "", created_at: str = "") -> None:
        """The key (by hash) and its entry in the developer's list of keys, together, if no one
        holds the key yet: a key never changes owner. Raises KeyTaken naming who holds it."""
        listing = {**_key(_keys_pk(developer), f"{prefix}#{key_hash}"),
                   **_serialize({"key_hash": key_hash, "prefix": prefix, "created_at": created_at})}
        failed = self._transact([
            {"Put": {"TableName": self.table,
                     "Item": {**_key(_api_key_pk(key_hash), RECORD), "developer_id": {"S": developer},
                              **_serialize({"prefix": prefix, "created_at": created_at})},
                     "ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": PK}}},
            self._put(listing)])
        if failed is not None:
            raise KeyTaken(self.developer_for_key(key_hash))

    def api_keys(self, developer: str) -> list[dict[str, Any]]:
        """A developer's keys as {key_hash, prefix, created_at}, by prefix."""
        return [_deserialize(item) for item in self._query(_keys_pk(developer))]

    def delete_api_key(self, developer: str, key_hash: str, prefix: str) -> bool:
        """Revoke: the key and its listing entry go together. False if it was not this developer's."""
        failed = self._transact([
            {"Delete": {"TableName": self.table, "Key": _key(_api_key_pk(key_hash), RECORD),
                        "ConditionExpression": "#developer = :developer",
                        "ExpressionAttributeNames": {"#developer": "developer_id"},
                        "ExpressionAttributeValues": {":developer": {"S": developer}}}},
            self._delete(_key(_keys_pk(developer), f"{prefix}#{key_hash}"))])
        return failed is None

    # records -----------------------------------------------------------------------------------

    def get(self, developer: str, kind: str, record_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key=_record_key(developer, kind, record_id),
                                    ConsistentRead=True).get("Item")
        return _deserialize(item) if item else None

    def get_many(self, developer: str, kind: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Records by id (consistent reads); ids that do not exist are simply absent."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), BATCH_GET_MAX):
            keys = [_record_key(developer, kind, i) for i in ids[start:start + BATCH_GET_MAX]]
            request = {self.table: {"Keys": keys, "ConsistentRead": True}}
            for attempt in _backoff():
                answer = self.client.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(self.table, []):
                    record = _deserialize(item)
                    found[record["id"]] = record
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def create(self, developer: str, kind: str, record: dict[str, Any],
               parents: list[tuple[str, str]], terms: list[str], receipt: dict[str, Any] | None = None) -> None:
        """Write a new record and its index entries in one transaction that also checks every
        parent exists (and writes the request's idempotency receipt, if any). Raises
        MissingRecord naming the first absent parent, ReceiptTaken if the receipt exists."""
        actions: list[dict[str, Any]] = [
            {"ConditionCheck": {"TableName": self.table, "Key": _record_key(developer, *parent),
                                "ConditionExpression": "attribute_exists(#pk)",
                                "ExpressionAttributeNames": {"#pk": PK}}}
            for parent in parents
        ]
        actions.append({"Put": {"TableName": self.table,
                                "Item": {**_record_key(developer, kind, record["id"]), **_serialize(record)},
                                "ConditionExpression": "attribute_not_exists(#pk)",
                                "ExpressionAttributeNames": {"#pk": PK}}})
        actions += [self._put(key) for key in entry_keys(developer, kind, record, terms)]
        failed = self._transact(self._with_receipt(actions, developer, receipt))
        if failed is not None:
            if failed < len(parents):
                raise MissingRecord(*parents[failed])
            if failed == len(actions):
                raise ReceiptTaken()
            raise VersionConflict()  # an id collision: astronomically unlikely with UUIDv4

    def replace(self, developer: str, kind: str, old: dict[str, Any], new: dict[str, Any],
                old_terms: list[str], new_terms: list[str]) -> None:
        """Write `new` over `old` if the stored record is still old's (its version, and its
        updated_at, which a history append moves without a new version), and swap exactly the
        index entries that differ, in one transaction. Raises MissingRecord or VersionConflict."""
        before = {_key_tuple(k) for k in entry_keys(developer, kind, old, old_terms)}
        after = {_key_tuple(k) for k in entry_keys(developer, kind, new, new_terms)}
        actions = [
            {"Put": {"TableName": self.table,
                     "Item": {**_record_key(developer, kind, new["id"]), **_serialize(new)},
                     **_still(old)}},
            *(self._delete(_key(*k)) for k in sorted(before - after)),
            *(self._put(_key(*k)) for k in sorted(after - before)),
        ]
        if self._transact(actions) is not None:
            if self.get(developer, kind, old["id"]) is None:
                raise MissingRecord(kind, old["id"])
            raise VersionConflict()

    def delete(self, developer: str, kind: str, record: dict[str, Any], terms: list[str],
               parents: list[tuple[str, str]] = ()) -> None:
        """Remove a record and its index entries, and leave a purge marker for whatever lives
        under it (history, child sessions), in one transaction, if the record is still at the
        version and updated_at read (else its entries may have moved). Raises MissingRecord if
        someone else deleted it first, VersionConflict if it changed."""
        actions: list[dict[str, Any]] = [
            {"Delete": {"TableName": self.table, "Key": _record_key(developer, kind, record["id"]),
                        **_still(record)}},
            *(self._delete(key) for key in entry_keys(developer, kind, record, terms)),
            # The marker names the parents, so a parent's resumed cascade can find this one.
            self._put({**_key(_purge_pk(developer), f"{kind}#{record['id']}"),
                       **_serialize({"parents": [f"{k}#{i}" for k, i in parents] or None})}),
        ]
        if self._transact(actions) is not None:
            if self.get(developer, kind, record["id"]) is None:
                raise MissingRecord(kind, record["id"])
            raise VersionConflict()

    # cascading deletes ---------------------------------------------------------------------------

    def purge_pending(self, developer: str, kind: str, record_id: str) -> bool:
        item = self.client.get_item(TableName=self.table, Key=_key(_purge_pk(developer), f"{kind}#{record_id}"),
                                    ConsistentRead=True).get("Item")
        return item is not None

    def pending_purges(self, developer: str) -> list[tuple[str, str]]:
        return [tuple(item[SK]["S"].split("#", 1))  # type: ignore[misc]
                for item in self._query(_purge_pk(developer), projection=SK)]

    def pending_child_purges(self, developer: str, parent_kind: str, parent_id: str) -> list[str]:
        """Ids of sessions whose purge is pending and whose marker names this parent."""
        parent = f"{parent_kind}#{parent_id}"
        return [item[SK]["S"].split("#", 1)[1] for item in self._query(_purge_pk(developer), prefix="session#")
                if parent in _deserialize(item).get("parents", [])]

    def finish_purge(self, developer: str, kind: str, record_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key=_key(_purge_pk(developer), f"{kind}#{record_id}"))

    def delete_history_batch(self, developer: str, session_id: str) -> bool:
        """Delete one Query page (up to 200) of a session's messages; True while more may remain.
        Callers loop until it is False, so an interrupted purge simply resumes."""
        answer = self.client.query(**self._query_args(
            _record_pk(developer, "session", session_id), prefix=MESSAGE_PREFIX, projection=f"{PK}, {SK}",
            limit=BATCH_WRITE_MAX * 8))
        self._batch_delete([{PK: item[PK], SK: item[SK]} for item in answer["Items"]])
        return "LastEvaluatedKey" in answer

    # history -----------------------------------------------------------------------------------

    def append_messages(self, developer: str, session: dict[str, Any], messages: list[dict[str, Any]],
                        updated_at: str, terms: list[str], receipt: dict[str, Any] | None = None) -> list[str]:
        """Store messages atomically after the session's newest, and record the activity on the
        session in the same transaction: its updated_at becomes `updated_at` (its update-order
        entries move with it) and LAST_POSITION the last new message's. Only while the session's
        updated_at is still the one read: a concurrent append or update raises VersionConflict
        (so does a deleted session), and the caller reads the session again. All messages of one
        append share `created_at` and the first one's id, so an append is contiguous and keeps
        its order; each Put is conditional, so no message ever overwrites another. The version
        does not change: activity is not an edit (docs/api.md, "Versions and idempotency")."""
        session_pk = _record_pk(developer, "session", session["id"])
        positions = message_positions(messages)
        before = [_key_tuple(key) for key in update_order_keys(developer, "session", session, terms)]
        after = [_key_tuple(key) for key in
                 update_order_keys(developer, "session", {**session, "updated_at": updated_at}, terms)]
        actions: list[dict[str, Any]] = [
            {"Update": {"TableName": self.table, "Key": _key(session_pk, RECORD),
                        "UpdateExpression": "SET #updated = :updated, #last = :last",
                        "ConditionExpression": "#updated = :seen",
                        # the session as it is now comes back with a failure: no read before the retry
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        "ExpressionAttributeNames": {"#updated": "updated_at", "#last": LAST_POSITION},
                        "ExpressionAttributeValues": {":updated": {"S": updated_at}, ":last": {"S": positions[-1]},
                                                      ":seen": {"S": session["updated_at"]}}}},
            *(self._delete(_key(*key)) for key in before),
            *(self._put(_key(*key)) for key in after),
        ]
        for position, message in zip(positions, messages):
            actions.append({"Put": {"TableName": self.table,
                                    "Item": {**_key(session_pk, position), **_serialize(message)},
                                    "ConditionExpression": "attribute_not_exists(#pk)",
                                    "ExpressionAttributeNames": {"#pk": PK}}})
        try:
            # A conflict is not retried here: sent again unchanged, a transaction that lost a race to
            # another append would only fail its condition. The caller restamps instead.
            cancelled = self._cancelled(self._with_receipt(actions, developer, receipt), _THROTTLED)
        except self.client.exceptions.TransactionCanceledException as exc:
            if _only_conflicts(exc):    # racing another writer of this session: read it again
                raise VersionConflict() from None
            raise
        failed, current = cancelled or (None, None)
        if failed == 0:
            raise VersionConflict(_deserialize(current) if current else None)
        if failed == len(actions):
            raise ReceiptTaken()
        if failed is not None:
            raise StoreError("a message position was taken")   # ids are random: not expected
        return positions

    def messages_at(self, developer: str, session_id: str, positions: list[str]) -> list[dict[str, Any]]:
        """The messages still at these positions, in the order given (one BatchGetItem)."""
        pk = _record_pk(developer, "session", session_id)
        found: dict[str, dict[str, Any]] = {}
        request = {self.table: {"Keys": [_key(pk, position) for position in positions], "ConsistentRead": True}}
        for attempt in _backoff():
            answer = self.client.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(self.table, []):
                found[item[SK]["S"]] = _deserialize(item)
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
        return [found[position] for position in positions if position in found]

    # idempotency receipts ------------------------------------------------------------------------

    def receipt(self, developer: str, key_hash: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key=_receipt_key(developer, key_hash),
                                    ConsistentRead=True).get("Item")
        return _deserialize(item) if item else None

    def put_receipt(self, developer: str, receipt: dict[str, Any]) -> None:
        """Write a receipt on its own (a request that writes nothing else). Raises ReceiptTaken."""
        if self._transact(self._with_receipt([], developer, receipt)) is not None:
            raise ReceiptTaken()

    def _with_receipt(self, actions: list[dict[str, Any]], developer: str,
                      receipt: dict[str, Any] | None) -> list[dict[str, Any]]:
        """`actions` and, last, a Put of the receipt that only succeeds if no live receipt has
        this key (one whose TTL has passed but which DynamoDB has not yet removed counts as gone)."""
        if receipt is None:
            return actions
        return [*actions, {"Put": {
            "TableName": self.table,
            "Item": {**_receipt_key(developer, receipt["key_hash"]), **_serialize(receipt)},
            "ConditionExpression": "attribute_not_exists(#pk) OR #expires < :now",
            "ExpressionAttributeNames": {"#pk": PK, "#expires": schema.TTL_ATTRIBUTE},
            "ExpressionAttributeValues": {":now": {"N": str(int(time.time()))}}}}]

    def last_message_time(self, developer: str, session_id: str) -> str | None:
        """`created_at` of the session's newest message: one key-only item read."""
        answer = self.client.query(**self._query_args(
            _record_pk(developer, "session", session_id), prefix=MESSAGE_PREFIX, descending=True,
            projection=SK, limit=1))
        return answer["Items"][0][SK]["S"].split("#")[1] if answer["Items"] else None

    def messages(self, developer: str, session_id: str, descending: bool = False,
                 after: str | None = None, page_size: int = 100) -> Iterator[tuple[str, dict[str, Any]]]:
        """A session's messages as (position, message), oldest first (or newest first), strictly
        past the position `after`, read page by page as the caller consumes them."""
        args = self._query_args(_record_pk(developer, "session", session_id), descending=descending,
                                limit=page_size + (after is not None))
        # BETWEEN keeps the range inside the messages (never the session's own item); its ends
        # are inclusive, so the item at `after` itself is skipped below.
        low, high = MESSAGE_PREFIX, MESSAGE_PREFIX[:-1] + chr(ord(MESSAGE_PREFIX[-1]) + 1)
        if after is not None:
            low, high = (low, after) if descending else (after, high)
        args["KeyConditionExpression"] += " AND #sk BETWEEN :low AND :high"
        args["ExpressionAttributeNames"]["#sk"] = SK
        args["ExpressionAttributeValues"].update({":low": {"S": low}, ":high": {"S": high}})
        while True:
            answer = self.client.query(**args)
            for item in answer["Items"]:
                position = item[SK]["S"]
                if position != after:
                    yield position, _deserialize(item)
            if "LastEvaluatedKey" not in answer:
                return
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
            args["Limit"] = min(args["Limit"] * 2, 1000)

    def write_summary(self, developer: str, session_id: str, version: int,
                      summary: str | None, until: str | None) -> bool:
        """Set the session's summary (and the position of the last message it covers) if the
        session is still at `version`; bumps the version so no read-modify-write that started
        earlier can overwrite it. False when the session changed meanwhile (or is gone)."""
        try:
            self.client.update_item(
                TableName=self.table, Key=_record_key(developer, "session", session_id),
                UpdateExpression="SET #summary = :summary, #until = :until, #version = :next",
                ConditionExpression="#version = :version",
                ExpressionAttributeNames={"#summary": "summary", "#until": "summary_until", "#version": "version"},
                ExpressionAttributeValues={":summary": _serializer.serialize(summary),
                                           ":until": _serializer.serialize(until),
                                           ":version": {"N": str(version)}, ":next": {"N": str(version + 1)}})
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    # index reads ---------------------------------------------------------------------------------

    def index_keys(self, developer: str, kind: str, term: str, order: str, descending: bool,
                   after: str | None = None, page_size: int = 100, limit: int | None = None) -> Iterator[str]:
        """Sort keys (`<value>#<id>`) of a term's entries in order, strictly past `after`, read
        as the caller consumes them in pages that start at `page_size` and double up to 100, at
        most `limit` in all."""
        args = self._query_args(_index_pk(developer, kind, term, order), descending=descending,
                                projection=SK, limit=page_size)
        if after is not None:
            args["KeyConditionExpression"] += f" AND #sk {'<' if descending else '>'} :after"
            args["ExpressionAttributeNames"]["#sk"] = SK
            args["ExpressionAttributeValues"][":after"] = {"S": after}
        read = 0
        while True:
            args["Limit"] = page_size if limit is None else min(page_size, limit - read)
            answer = self.client.query(**args)
            for item in answer["Items"]:
                read += 1
                yield item[SK]["S"]
            if "LastEvaluatedKey" not in answer or (limit is not None and read >= limit):
                return
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
            page_size = min(page_size * 2, 100)

    def scan_developer(self, developer: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Every item of a developer as (pk, sk, attributes): a full-table Scan, for the
        consistency check only (an operator's tool, never a request path)."""
        args: dict[str, Any] = {"TableName": self.table, "FilterExpression": "begins_with(#pk, :prefix)",
                                "ConsistentRead": True, "ExpressionAttributeNames": {"#pk": PK},
                                "ExpressionAttributeValues": {":prefix": {"S": developer_prefix(developer)}}}
        while True:
            answer = self.client.scan(**args)
            for item in answer["Items"]:
                yield item[PK]["S"], item[SK]["S"], _deserialize(item)
            if "LastEvaluatedKey" not in answer:
                return
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # operators' export and import (chalicelib/admin.py, docs/operations.md) -----------------------

    def scan_developer_raw(self, developer: str) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Everything that is a developer's, as DynamoDB's typed items, page by page as (items,
        how many items the page scanned): every `dev#<d>#` item and every `apikey#` record naming
        the developer (listed or not). A strongly consistent full-table Scan: operators only."""
        args: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "FilterExpression": "begins_with(#pk, :prefix) OR (begins_with(#pk, :apikey) AND #developer = :developer)",
            "ExpressionAttributeNames": {"#pk": PK, "#developer": "developer_id"},
            "ExpressionAttributeValues": {":prefix": {"S": developer_prefix(developer)},
                                          ":apikey": {"S": API_KEY_PREFIX},
                                          ":developer": {"S": developer}}}
        while True:
            answer = self.client.scan(**args)
            yield answer["Items"], answer.get("ScannedCount", len(answer["Items"]))
            if "LastEvaluatedKey" not in answer:
                return
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def put_items(self, items: list[dict[str, Any]]) -> None:
        """Write typed items exactly as given: BatchWriteItem, 25 a call, unprocessed ones sent
        again with backoff. Not conditional and not atomic: an operator's restore, never a request."""
        for start in range(0, len(items), BATCH_WRITE_MAX):
            pending = {self.table: [{"PutRequest": {"Item": item}} for item in items[start:start + BATCH_WRITE_MAX]]}
            for attempt in _backoff(attempts=12):
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break

    def delete_items(self, keys: list[dict[str, Any]]) -> None:
        """Delete items by key ({pk, sk} typed), 25 a call (an operator's replace-import)."""
        self._batch_delete(keys)

    # helpers -----------------------------------------------------------------------------------

    def _put(self, key: dict[str, Any]) -> dict[str, Any]:
        return {"Put": {"TableName": self.table, "Item": key}}

    def _delete(self, key: dict[str, Any]) -> dict[str, Any]:
        return {"Delete": {"TableName": self.table, "Key": key}}

    def _query_args(self, pk: str, prefix: str | None = None, descending: bool = False,
                    projection: str | None = None, limit: int | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True, "ScanIndexForward": not descending,
            "KeyConditionExpression": "#pk = :pk", "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        if prefix is not None:
            args["KeyConditionExpression"] += " AND begins_with(#sk, :prefix)"
            args["ExpressionAttributeNames"]["#sk"] = SK
            args["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
        if projection is not None:
            # Projected names go through placeholders too (pk/sk are not reserved, but stay uniform).
            names = [name.strip() for name in projection.split(",")]
            args["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(names)))
            args["ExpressionAttributeNames"].update({f"#p{i}": n for i, n in enumerate(names)})
        if limit is not None:
            args["Limit"] = limit
        return args

    def _query(self, pk: str, **options: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query, following LastEvaluatedKey past DynamoDB's 1 MB pages."""
        args = self._query_args(pk, **options)
        while True:
            answer = self.client.query(**args)
            yield from answer["Items"]
            if "LastEvaluatedKey" not in answer:
                return
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _batch_delete(self, keys: list[dict[str, Any]]) -> None:
        for start in range(0, len(keys), BATCH_WRITE_MAX):
            pending = {self.table: [{"DeleteRequest": {"Key": k}} for k in keys[start:start + BATCH_WRITE_MAX]]}
            for attempt in _backoff():
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break

    def _transact(self, actions: list[dict[str, Any]]) -> int | None:
        """Run a transaction; None on success, else the index of the first action whose
        condition failed (see _cancelled)."""
        cancelled = self._cancelled(actions)
        return None if cancelled is None else cancelled[0]

    def _cancelled(self, actions: list[dict[str, Any]], retryable: frozenset[str] = _RETRYABLE_CANCELLATIONS
                   ) -> tuple[int, dict[str, Any] | None] | None:
        """Run a transaction; None on success, else the index of the first action whose
        condition failed and the item it saw (if the action asked for it back). A transaction
        cancelled only by a conflict with another one (or by throttling) applied nothing, so it
        is sent again, a few times, with jittered backoff.

        botocore fills a ClientRequestToken into each call and keeps it when it sends the call
        again after a lost answer, so DynamoDB answers that repeat with the first outcome instead
        of running it twice (tests/test_reliability.py shows it on DynamoDB Local)."""
        for attempt in range(TRANSACT_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=actions)
                return None
            except self.client.exceptions.TransactionCanceledException as exc:
                reasons = exc.response.get("CancellationReasons") or []
                codes = [reason.get("Code") for reason in reasons]
                if "ConditionalCheckFailed" in codes:
                    failed = codes.index("ConditionalCheckFailed")
                    return failed, reasons[failed].get("Item")
                if attempt + 1 == TRANSACT_ATTEMPTS or not set(codes) & retryable:
                    raise
                time.sleep(random.uniform(0, min(0.02 * 2 ** attempt, 0.5)))
        raise AssertionError("unreachable")


def _backoff(attempts: int = 8) -> Iterator[int]:
    """Attempt numbers for batch calls, sleeping between them: DynamoDB hands back unprocessed
    items under throttling, and the answer to that is to wait and send them again."""
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
        yield attempt
    raise StoreError("DynamoDB kept items unprocessed after retries")


# --- the process-wide store -----------------------------------------------------------------------

_store: Store | None = None


def client_config() -> Any:
    """botocore settings for DynamoDB, bounded so that one call at its worst (3 attempts of 1 s to
    connect and 2 s to read, plus up to 1 + 2 s of backoff: 12 s) ends well inside API Gateway's
    29 s, leaving room for a cascade's 15 s budget (docs/reliability.md "Faults")."""
    from botocore.config import Config

    return Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 3},
                  region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")


def get_store() -> Store:
    """The store for this process, made on first use (not at import: cold starts stay small)."""
    global _store
    if _store is None:
        import boto3

        _store = Store(boto3.client("dynamodb", config=client_config()), schema.table_name())
    return _store


def use_store(store: Store | None) -> None:
    """Make `store` the process-wide one (None: make a fresh one from the environment on next use)."""
    global _store
    _store = store
