"""The store's request-path operations on the one table: records with their index entries,
history, API keys, idempotency receipts and cascading deletes, each as the fewest calls DynamoDB
allows. It speaks in records (plain dicts of a resource's fields) and named errors
(store/errors.py); keys are store/keys.py's, typed values store/codec.py's.

A record and its index entries change in one transaction, so they never disagree. A history
append is a change of its session too: its `updated_at` and update-order entries move in the
append's transaction, and the record keeps the position of the newest message (LAST_POSITION),
which the next append is stamped after.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.shared import backoff, clock, telemetry

from . import codec, keys, lineage, schema
from .client import translating, unavailable, watch_writes
from .codec import deserialize, key, serialize
from .errors import KeyTaken, MissingRecord, ReceiptTaken, VersionConflict
from .keys import MESSAGE_PREFIX, RECORD
from .lineage import BEFORE_ANY_MESSAGE, FORKED_THROUGH, HIDDEN, LINEAGE, hidden_ranges, is_hidden, parts
from .transaction import Transaction

Record = dict[str, Any]  # a record (or a message, or a receipt): its fields as plain values

# On a session record: the position of the newest message ever appended ("" before the first;
# absent on sessions written before it was kept, whose newest message a Query finds instead).
LAST_POSITION = "last_position"
# On a session record: the id of the message that is last in its history now ("" when it has none;
# absent on sessions written before it was kept, whose newest message a Query finds instead).
LAST_MESSAGE_ID = "last_message_id"
# On a session record: true when every message of it has an id that carries its position
# (keys.message_ids); absent on sessions created before, whose older messages a Query finds.
POSITIONAL_IDS = "positional_ids"
# On a session record: its tool calls awaiting a result, {call id: position of the message that
# made it}; absent on sessions that never made one (chalicelib/rules/toolcalls.py).
OPEN_CALLS = "open_calls"
# On a record: when it expires, in epoch seconds (the table's TTL attribute). From that second it is
# gone for every request; DynamoDB's TTL removes it later (docs/api.md, "Retention").
EXPIRES = schema.TTL_ATTRIBUTE
# A fork's marker expires this long after the fork began (a fork has a request's 15 s): then the
# stream removes what an unfinished fork copied.
FORK_MARKER_SECONDS = 3600
# The purge kind of a rewind's marker (dev#<d>#purge, history#<session id>#<range id>): what is left
# to delete.
REWIND = "history"

PK, SK = schema.PARTITION_KEY, schema.SORT_KEY
BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
TRANSACT_ATTEMPTS = 5
BATCH_ATTEMPTS = 8
_THROTTLED = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})
_RETRYABLE_CANCELLATIONS = _THROTTLED | {"TransactionConflict"}


def _still(record: dict[str, Any]) -> dict[str, Any]:
    """The condition that the stored record is still the one read: the same version and the same
    updated_at (a history append moves updated_at, and the entries with it, but not the version),
    and no fork made of it since (FORKED_THROUGH: a message a new fork reads is never deleted)."""
    forked = record.get(FORKED_THROUGH)
    return {
        "ConditionExpression": "#version = :version AND #updated = :updated AND "
        + ("attribute_not_exists(#forked)" if forked is None else "#forked = :forked"),
        "ExpressionAttributeNames": {"#version": "version", "#updated": "updated_at", "#forked": FORKED_THROUGH},
        "ExpressionAttributeValues": {
            ":version": {"N": str(record["version"])},
            ":updated": {"S": record["updated_at"]},
            **({":forked": {"S": forked}} if forked is not None else {}),
        },
    }


def _only_conflicts(exc: Any) -> bool:
    codes = {reason.get("Code") for reason in exc.response.get("CancellationReasons") or []}
    return bool(codes) and codes <= {"TransactionConflict", "None", None}


def _entry(entry_key: tuple[str, str], record: Record) -> dict[str, Any]:
    """An index entry of `record`, with its expiry when it has one: lists skip expired entries in
    the Query itself, and DynamoDB's TTL removes them with the record."""
    expires = record.get(EXPIRES)
    return {**key(*entry_key), **({EXPIRES: {"N": str(int(expires))}} if expires is not None else {})}


def _live(now: int) -> dict[str, Any]:
    """A condition (with its names and values) that holds for an item not expired at `now`."""
    return {
        "expression": "(attribute_not_exists(#expires) OR #expires > :now)",
        "names": {"#expires": EXPIRES},
        "values": {":now": {"N": str(now)}},
    }


def _sources(record: Record) -> dict[str, Any]:
    """A purge marker's `sources`: the sessions a fork reads (its LINEAGE's partitions)."""
    sources = [source for source, _ in lineage.lineage(record)]
    return {"sources": sources} if sources else {}


def _holder(session: Record, position: str) -> str:
    """The session whose partition holds the message at this position of `session`'s view."""
    part = lineage.part_of(session, position)
    return part.partition if part is not None else session["id"]


def _record_key(developer: str, kind: str, record_id: str) -> dict[str, Any]:
    return key(keys.record_pk(developer, kind, record_id), RECORD)


@translating
class Store:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        telemetry.instrument(client)  # each request's log line counts its DynamoDB calls
        watch_writes(client)

    # API keys ----------------------------------------------------------------------------------

    def developer_for_key(self, key_hash: str) -> str | None:
        item = self.client.get_item(
            TableName=self.table, Key=key(keys.api_key_pk(key_hash), RECORD), ConsistentRead=True
        ).get("Item")
        return item["developer_id"]["S"] if item else None

    def put_api_key(self, key_hash: str, developer: str, prefix: str = "", created_at: str = "") -> None:
        """The key (by hash) and its entry in the developer's list of keys, together, if no one
        holds the key yet: a key never changes owner. Raises KeyTaken naming who holds it."""
        listing = {
            **key(keys.keys_pk(developer), keys.key_listing_sk(prefix, key_hash)),
            **serialize({"key_hash": key_hash, "prefix": prefix, "created_at": created_at}),
        }
        transaction = Transaction().add(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        **key(keys.api_key_pk(key_hash), RECORD),
                        "developer_id": {"S": developer},
                        **serialize({"prefix": prefix, "created_at": created_at}),
                    },
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                }
            },
            if_failed=lambda _: KeyTaken(self.developer_for_key(key_hash)),
        )
        self._run(transaction.add(self._put(listing)))

    def api_keys(self, developer: str) -> list[dict[str, Any]]:
        """A developer's keys as {key_hash, prefix, created_at}, by prefix."""
        return [deserialize(item) for item in self._query(keys.keys_pk(developer))]

    def delete_api_key(self, developer: str, key_hash: str, prefix: str) -> bool:
        """Revoke: the key and its listing entry go together. False if it was not this developer's."""
        transaction = Transaction().add(
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": key(keys.api_key_pk(key_hash), RECORD),
                    "ConditionExpression": "#developer = :developer",
                    "ExpressionAttributeNames": {"#developer": "developer_id"},
                    "ExpressionAttributeValues": {":developer": {"S": developer}},
                }
            }
        )
        try:
            self._run(
                transaction.add(self._delete(key(keys.keys_pk(developer), keys.key_listing_sk(prefix, key_hash))))
            )
        except VersionConflict:  # not this developer's
            return False
        return True

    # records -----------------------------------------------------------------------------------

    def get(self, developer: str, kind: str, record_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table, Key=_record_key(developer, kind, record_id), ConsistentRead=True
        ).get("Item")
        return deserialize(item) if item else None

    def get_many(self, developer: str, kind: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Records by id (consistent reads); ids that do not exist are simply absent."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), BATCH_GET_MAX):
            wanted = [_record_key(developer, kind, i) for i in ids[start : start + BATCH_GET_MAX]]
            for item in self._batch_get(wanted):
                record = deserialize(item)
                found[record["id"]] = record
        return found

    def create(
        self,
        developer: str,
        kind: str,
        record: Record,
        parents: list[tuple[str, str]],
        terms: list[str],
        receipt: Record | None = None,
        finishing_fork: bool = False,
    ) -> None:
        """Write a new record and its index entries in one transaction that also checks every
        parent exists (and writes the request's idempotency receipt, if any); `finishing_fork`:
        and removes the marker of the fork whose copied history it completes (start_fork). Raises
        MissingRecord naming the first absent parent, ReceiptTaken if the receipt exists."""
        transaction = self._parents_live(Transaction(), developer, parents)
        transaction.add(  # failing only for an id collision: astronomically unlikely with UUIDv4
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**_record_key(developer, kind, record["id"]), **serialize(record)},
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                }
            }
        )
        transaction.extend(self._put(_entry(k, record)) for k in keys.entry_keys(developer, kind, record, terms))
        if finishing_fork:
            transaction.add(self._delete(key(keys.purge_pk(developer), keys.purge_sk(kind, record["id"]))))
        self._run(self._with_receipt(transaction, developer, receipt))

    def replace(
        self,
        developer: str,
        kind: str,
        old: Record,
        new: Record,
        old_terms: list[str],
        new_terms: list[str],
    ) -> None:
        """Write `new` over `old` if the stored record is still old's (its version, and its
        updated_at, which a history append moves without a new version), and swap exactly the
        index entries that differ, in one transaction. Raises MissingRecord or VersionConflict."""
        before = set(keys.entry_keys(developer, kind, old, old_terms))
        after = set(keys.entry_keys(developer, kind, new, new_terms))
        # entries carry the record's expiry (index_entries skips expired ones): a new one rewrites them all
        kept = before & after if old.get(EXPIRES) == new.get(EXPIRES) else set()
        transaction = Transaction().add(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**_record_key(developer, kind, new["id"]), **serialize(new)},
                    **_still(old),
                }
            },
            if_failed=self._gone_or_changed(developer, kind, old["id"]),
        )
        transaction.extend(self._delete(key(*k)) for k in sorted(before - after))
        transaction.extend(self._put(_entry(k, new)) for k in sorted(after - kept))
        self._run(transaction)

    def delete(
        self, developer: str, kind: str, record: Record, terms: list[str], parents: list[tuple[str, str]] = ()
    ) -> None:
        """Remove a record and its index entries, and leave a purge marker for whatever lives
        under it (history, child sessions), in one transaction, if the record is still at the
        version and updated_at read (else its entries may have moved). Raises MissingRecord if
        someone else deleted it first, VersionConflict if it changed."""
        transaction = Transaction().add(
            {"Delete": {"TableName": self.table, "Key": _record_key(developer, kind, record["id"]), **_still(record)}},
            if_failed=self._gone_or_changed(developer, kind, record["id"]),
        )
        transaction.extend(self._delete(key(*k)) for k in keys.entry_keys(developer, kind, record, terms))
        # The marker names the parents, so a parent's resumed cascade can find this one, and
        # the sessions a fork reads, whose references it drops when its purge is done.
        marker = {"parents": [keys.purge_sk(k, i) for k, i in parents] or None, **_sources(record)}
        transaction.add(
            self._put({**key(keys.purge_pk(developer), keys.purge_sk(kind, record["id"])), **serialize(marker)})
        )
        self._run(transaction)

    def remove_expired(
        self, developer: str, kind: str, record: Record, terms: list[str], parents: list[tuple[str, str]]
    ) -> None:
        """What DynamoDB's TTL removal of a record leaves to do, begun: its index entries go (TTL
        takes them too, at its own pace) and a purge marker names what lives under it, as a
        DELETE's transaction would. Safe to repeat: a marker put again restarts a purge that finds
        nothing left."""
        marker = {"parents": [keys.purge_sk(k, i) for k, i in parents] or None, "expired": True, **_sources(record)}
        transaction = Transaction().extend(
            self._delete(key(*k)) for k in keys.entry_keys(developer, kind, record, terms)
        )
        transaction.add(
            self._put({**key(keys.purge_pk(developer), keys.purge_sk(kind, record["id"])), **serialize(marker)})
        )
        self._run(transaction)

    # index reads ---------------------------------------------------------------------------------

    def index_entries(
        self,
        developer: str,
        kind: str,
        term: str,
        order: str,
        descending: bool,
        after: str | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> Iterator[keys.IndexEntry]:
        """A term's entries in order, strictly past the position `after`, read as the caller
        consumes them in pages that start at `page_size` and double up to 100, at most `limit` in
        all."""
        args = self._query_args(keys.index_pk(developer, kind, term, order), descending=descending, projection=SK)
        live = _live(int(clock.epoch_seconds()))  # an expired record's entries wait for TTL: skipped here
        args["FilterExpression"] = live["expression"]
        args["ExpressionAttributeNames"].update(live["names"])
        args["ExpressionAttributeValues"] = {**args.get("ExpressionAttributeValues", {}), **live["values"]}
        if after is not None:
            args["KeyConditionExpression"] += f" AND #sk {'<' if descending else '>'} :after"
            args["ExpressionAttributeNames"]["#sk"] = SK
            args["ExpressionAttributeValues"][":after"] = {"S": after}
        read = 0
        sizes = _doubling(page_size, 100)

        def next_limit() -> int:
            size = next(sizes)
            return size if limit is None else min(size, limit - read)

        for answer in self._pages("query", args, next_limit):
            for item in answer["Items"]:
                read += 1
                yield keys.IndexEntry(item[SK]["S"], keys.id_in(item[SK]["S"]))
            if limit is not None and read >= limit:
                return

    # cascading deletes ---------------------------------------------------------------------------

    def purge_marker(self, developer: str, kind: str, record_id: str) -> Record | None:
        """The purge marker of a record (a cascade, a rewind's range: `history`, `<session>#<range>`)
        that has not finished, with what it says; None when there is none."""
        item = self.client.get_item(
            TableName=self.table, Key=key(keys.purge_pk(developer), keys.purge_sk(kind, record_id)), ConsistentRead=True
        ).get("Item")
        return deserialize(item) if item else None

    def purge_pending(self, developer: str, kind: str, record_id: str) -> bool:
        return self.purge_marker(developer, kind, record_id) is not None

    def pending_purges(self, developer: str) -> list[tuple[str, str]]:
        return [keys.purge_target(item[SK]["S"]) for item in self._query(keys.purge_pk(developer), projection=SK)]

    def pending_child_purges(self, developer: str, parent_kind: str, parent_id: str) -> list[str]:
        """Ids of sessions whose purge is pending and whose marker names this parent."""
        parent = keys.purge_sk(parent_kind, parent_id)
        return [
            keys.purge_target(item[SK]["S"])[1]
            for item in self._query(keys.purge_pk(developer), prefix=keys.PURGE_PREFIX_OF_SESSIONS)
            if parent in deserialize(item).get("parents", [])
        ]

    def finish_purge(self, developer: str, kind: str, record_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key=key(keys.purge_pk(developer), keys.purge_sk(kind, record_id)))

    def delete_history_batch(
        self,
        developer: str,
        session_id: str,
        after: str | None = None,
        through: str | None = None,
        above: str | None = None,
    ) -> bool:
        """Delete one Query page (up to 200) of a session partition's messages: all of them, or
        those strictly after `after` up to `through` (a hidden range), and of those only the ones
        strictly after `above` (what forks read stays: fork_refs); True while more may remain.
        Callers loop until it is False, so an interrupted purge simply resumes."""
        low = max((p for p in (after, above) if p is not None), default=MESSAGE_PREFIX)
        high = through if through is not None else keys.MESSAGES_END
        if low >= high:  # all of it kept (DynamoDB refuses a BETWEEN whose bounds are reversed)
            return False
        args = self._query_args(
            keys.record_pk(developer, "session", session_id), projection=f"{PK}, {SK}", limit=BATCH_WRITE_MAX * 8
        )
        args["KeyConditionExpression"] += " AND #sk BETWEEN :low AND :high"
        args["ExpressionAttributeNames"]["#sk"] = SK
        args["ExpressionAttributeValues"].update({":low": {"S": low}, ":high": {"S": high}})
        answer = self.client.query(**args)
        doomed = [item for item in answer["Items"] if item[SK]["S"] != low]  # the low end is exclusive
        self._batch_write([{"DeleteRequest": {"Key": codec.only_key(item)}} for item in doomed])
        return "LastEvaluatedKey" in answer

    # forks ---------------------------------------------------------------------------------------

    def create_fork(
        self,
        developer: str,
        record: Record,
        parent: Record,
        parents: list[tuple[str, str]],
        terms: list[str],
        receipt: Record | None = None,
    ) -> None:
        """Create a fork of `parent` in one transaction: as `create` does (its agent and user
        checked, the record and its index entries, the receipt), and, for each partition its
        LINEAGE reads, a reference item there (`fork#<id>`, with how far it reads), so no purge
        takes what the fork reads; and the parent's FORKED_THROUGH moved to the fork point, if the
        parent is still as read (else VersionConflict: its hidden ranges may have moved)."""
        point = lineage.fork_point(record)
        forked = max(p for p in (parent.get(FORKED_THROUGH), point) if p is not None)
        still = _still(parent)
        transaction = self._parents_live(Transaction(), developer, parents)
        transaction.add(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": _record_key(developer, "session", parent["id"]),
                    "UpdateExpression": "SET #forked = :forked_now",
                    "ConditionExpression": still["ConditionExpression"],
                    "ExpressionAttributeNames": still["ExpressionAttributeNames"],
                    "ExpressionAttributeValues": {**still["ExpressionAttributeValues"], ":forked_now": {"S": forked}},
                }
            },
            if_failed=self._gone_or_changed(developer, "session", parent["id"]),
        )
        transaction.add(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**_record_key(developer, "session", record["id"]), **serialize(record)},
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                }
            }
        )
        transaction.extend(self._put(_entry(k, record)) for k in keys.entry_keys(developer, "session", record, terms))
        transaction.extend(
            self._put(
                {
                    **key(keys.record_pk(developer, "session", source), keys.fork_ref_sk(record["id"])),
                    "through": {"S": through},
                }
            )
            for source, through in lineage.lineage(record)
        )
        self._run(self._with_receipt(transaction, developer, receipt))

    def fork_refs(self, developer: str, session_id: str) -> dict[str, str]:
        """{fork id: how far it reads} of the forks that read this session's partition."""
        return {
            item[SK]["S"].removeprefix(keys.FORK_REF_PREFIX): item["through"]["S"]
            for item in self._query(keys.record_pk(developer, "session", session_id), prefix=keys.FORK_REF_PREFIX)
        }

    def delete_fork_ref(self, developer: str, source: str, fork_id: str) -> None:
        self.client.delete_item(
            TableName=self.table, Key=key(keys.record_pk(developer, "session", source), keys.fork_ref_sk(fork_id))
        )

    # history -----------------------------------------------------------------------------------

    def append_messages(
        self,
        developer: str,
        session: Record,
        messages: list[Record],
        updated_at: str,
        terms: list[str],
        receipt: Record | None = None,
        open_calls: dict[str, str] | None = None,
    ) -> list[str]:
        """Store messages atomically after the session's newest, and record the activity on the
        session in the same transaction: its updated_at becomes `updated_at` (its update-order
        entries move with it), LAST_POSITION the last new message's position and LAST_MESSAGE_ID
        its id, and OPEN_CALLS `open_calls` when given. Only while the session's
        updated_at is still the one read: a concurrent append or update raises VersionConflict
        (so does a deleted session), and the caller reads the session again. All messages of one
        append share `created_at` and the first one's id, so an append is contiguous and keeps
        its order; each Put is conditional, so no message ever overwrites another. The version
        does not change: activity is not an edit (docs/api.md, "Versions and idempotency")."""
        session_pk = keys.record_pk(developer, "session", session["id"])
        positions = keys.message_positions(messages)
        before = keys.update_order_keys(developer, "session", session, terms)
        after = keys.update_order_keys(developer, "session", {**session, "updated_at": updated_at}, terms)
        transaction = Transaction().add(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": key(session_pk, RECORD),
                    "UpdateExpression": "SET #updated = :updated, #last = :last, #last_id = :last_id"
                    + (", #open = :open" if open_calls is not None else ""),
                    "ConditionExpression": "#updated = :seen",
                    # the session as it is now comes back with a failure: no read before the retry
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    "ExpressionAttributeNames": {
                        "#updated": "updated_at",
                        "#last": LAST_POSITION,
                        "#last_id": LAST_MESSAGE_ID,
                        **({"#open": OPEN_CALLS} if open_calls is not None else {}),
                    },
                    "ExpressionAttributeValues": {
                        ":updated": {"S": updated_at},
                        ":last": {"S": positions[-1]},
                        ":last_id": {"S": messages[-1]["id"]},
                        ":seen": {"S": session["updated_at"]},
                        **({":open": codec.value(open_calls)} if open_calls is not None else {}),
                    },
                }
            },
            if_failed=lambda current: VersionConflict(deserialize(current) if current else None),
        )
        transaction.extend(self._delete(key(*k)) for k in before)
        transaction.extend(self._put(_entry(k, session)) for k in after)
        transaction.extend(
            (
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**key(session_pk, position), **serialize(message)},
                        "ConditionExpression": "attribute_not_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": PK},
                    }
                }
                for position, message in zip(positions, messages)
            ),
            if_failed=unavailable("a message position was taken"),  # ids are random: not expected
        )
        try:
            # A conflict is not retried here: sent again unchanged, a transaction that lost a race to
            # another append would only fail its condition. The caller restamps instead.
            self._run(self._with_receipt(transaction, developer, receipt), _THROTTLED)
        except self.client.exceptions.TransactionCanceledException as exc:
            if _only_conflicts(exc):  # racing another writer of this session: read it again
                raise VersionConflict() from None
            raise
        return positions

    def messages_at(self, developer: str, session_id: str, positions: list[str]) -> list[dict[str, Any]]:
        """The messages still at these positions, in the order given (one BatchGetItem)."""
        pk = keys.record_pk(developer, "session", session_id)
        found = {item[SK]["S"]: deserialize(item) for item in self._batch_get([key(pk, p) for p in positions])}
        return [found[position] for position in positions if position in found]

    def find_message(
        self, developer: str, session_id: str, message_id: str
    ) -> tuple[Record | None, str | None, Record | None]:
        """(the session, the message's position, the message), None for what is absent: one
        BatchGetItem of the session and the position the id names, and for a session from before
        ids carried positions, a Query of its history for the id if that missed."""
        pk = keys.record_pk(developer, "session", session_id)
        position = keys.position_of(message_id)
        wanted = [key(pk, RECORD)] + ([key(pk, position)] if position else [])
        found = {item[SK]["S"]: item for item in self._batch_get(wanted)}
        session = deserialize(found[RECORD]) if RECORD in found else None
        item = found.get(position) if position else None
        point = lineage.fork_point(session)
        if position and point is not None and keys.message_time(position) <= keys.message_time(point):
            return self._inherited(developer, session, message_id)  # own messages are all newer
        if position and is_hidden(position, hidden_ranges(session)):
            return session, None, None  # rewound: gone for every read, whatever its purge's state
        if item is not None and item.get("id") == {"S": message_id}:
            return session, position, deserialize(item)
        if session is None or session.get(POSITIONAL_IDS):
            return session, None, None
        args = self._query_args(pk, prefix=MESSAGE_PREFIX)
        args.update(FilterExpression="#id = :id")
        args["ExpressionAttributeNames"]["#id"] = "id"
        args["ExpressionAttributeValues"][":id"] = {"S": message_id}
        for answer in self._pages("query", args):
            for item in answer["Items"]:
                if is_hidden(item[SK]["S"], hidden_ranges(session)):
                    return session, None, None
                return session, item[SK]["S"], deserialize(item)
        return session, None, None

    def _inherited(
        self, developer: str, session: Record, message_id: str
    ) -> tuple[Record | None, str | None, Record | None]:
        """find_message for an id the session gives a message it inherits: the partition of its
        lineage that holds the position, read with one GetItem."""
        position = keys.inherited_position(session["id"], message_id)
        part = lineage.part_of(session, position) if position else None
        if part is None or part.own or is_hidden(position, hidden_ranges(session)):
            return session, None, None
        item = self.client.get_item(
            TableName=self.table,
            Key=key(keys.record_pk(developer, "session", part.partition), position),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return session, None, None
        return session, position, {**deserialize(item), "id": message_id}

    def remove_messages(
        self,
        developer: str,
        session: Record,
        positions: list[str],
        updated_at: str,
        terms: list[str],
        last_message_id: str | None,
        clear_summary: bool,
        open_calls: dict[str, str] | None = None,
        hidden: list[tuple[str, str]] = (),
    ) -> None:
        """Delete messages (one, or an assistant message with the tool results that answered it),
        and add the `hidden` ranges ((after, through) each) for those another session reads
        (lineage.shared), and record the change on the session in the same transaction
        (`_history_changed`). Only while the session is as read: else VersionConflict; a message
        already gone, MissingRecord."""
        session_pk = keys.record_pk(developer, "session", session["id"])
        hide = [(secrets.token_hex(6), after, through) for after, through in hidden]
        changed = self._history_changed(
            developer, session, updated_at, terms, last_message_id, clear_summary, open_calls, hide
        )
        transaction = Transaction().extend(changed)
        for position in positions:
            transaction.add(
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": key(session_pk, position),
                        "ConditionExpression": "attribute_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": PK},
                    }
                },
                if_failed=MissingRecord("message", position),
            )
        self._run(transaction)

    def start_rewind(
        self,
        developer: str,
        session: Record,
        after: tuple[str, str],
        through: str,
        updated_at: str,
        terms: list[str],
        clear_summary: bool,
        open_calls: dict[str, str] | None = None,
    ) -> tuple[str, list[str]]:
        """Remove every message after `after` ((position, id); (BEFORE_ANY_MESSAGE, "") for all
        of them, a clear) up to `through` (the newest position when it begins; what is appended
        later stays). In one transaction the session records the change (`_history_changed`: the
        message at `after` becoming the last) and hides the range from every read at once (HIDDEN),
        the message is checked to exist, and a marker (purge kind "history") says what is left to
        delete, for the stream, a retry or the operators' sweep (delete_history_batch,
        finish_hidden). When the range reaches into what the session inherits (a fork's rewind
        or clear), its lineage is cut at `after` and its references move with it: the one in each
        partition it still reads says how far, those it no longer reads go, and the marker names
        those partitions (`tidy`: what only this fork kept there can go). The range's id and those
        partitions; VersionConflict if the session changed, MissingRecord if the message went."""
        range_id = secrets.token_hex(6)
        marker: Record = {"after": after[0], "through": through, "after_id": after[1], "range": range_id}
        if session.get(FORKED_THROUGH):  # how far forks made before it read: their part stays
            marker[FORKED_THROUGH] = session[FORKED_THROUGH]
        cut = lineage.cut_at(session, after[0])
        references: list[dict[str, Any]] = []
        if cut is not None:
            still_read = dict(cut)
            marker["tidy"] = [source for source, _ in lineage.lineage(session)]
            for source in marker["tidy"]:
                ref_key = key(keys.record_pk(developer, "session", source), keys.fork_ref_sk(session["id"]))
                if source in still_read:
                    references.append(self._put({**ref_key, "through": {"S": still_read[source]}}))
                else:
                    references.append(self._delete(ref_key))
        changed = self._history_changed(
            developer,
            session,
            updated_at,
            terms,
            after[1],
            clear_summary,
            open_calls,
            [(range_id, after[0], through)],
            cut,
        )
        transaction = Transaction().extend(changed)
        if after[0] != BEFORE_ANY_MESSAGE:
            transaction.add(
                {
                    "ConditionCheck": {  # in the partition that holds it (an inherited one: its source's)
                        "TableName": self.table,
                        "Key": key(keys.record_pk(developer, "session", _holder(session, after[0])), after[0]),
                        "ConditionExpression": "attribute_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": PK},
                    }
                },
                if_failed=MissingRecord("message", after[1]),
            )
        transaction.add(
            self._put(
                {
                    **key(keys.purge_pk(developer), keys.purge_sk(REWIND, f"{session['id']}#{range_id}")),
                    **serialize(marker),
                }
            )
        )
        self._run(transaction.extend(references))
        return range_id, marker.get("tidy", [])

    def finish_hidden(self, developer: str, session_id: str, range_id: str) -> None:
        """A hidden range's messages are all deleted: the range leaves the session record (if it
        is still there: a later rewind that covers it, or a delete of the session, took it)."""
        self._update_session(
            developer,
            session_id,
            "REMOVE #hidden.#range",
            "attribute_exists(#hidden.#range)",
            {"#hidden": HIDDEN, "#range": range_id},
            {},
        )

    def start_fork(self, developer: str, session_id: str, parents: list[tuple[str, str]]) -> None:
        """Before a fork copies history into the partition of a session that does not exist yet: a
        purge marker for that session, so a fork that never finishes is cleaned up (by the
        marker's expiry, FORK_MARKER_SECONDS on, through the stream; or by the operators' sweep or
        a parent's cascade), and the consistency check knows its messages. The stream never
        purges at the marker's insert: the fork is being copied."""
        marker = {
            "parents": [keys.purge_sk(k, i) for k, i in parents] or None,
            "fork": True,
            EXPIRES: int(clock.epoch_seconds()) + FORK_MARKER_SECONDS,
        }
        self.client.put_item(
            TableName=self.table,
            Item={**key(keys.purge_pk(developer), keys.purge_sk("session", session_id)), **serialize(marker)},
        )

    def put_messages(self, developer: str, session_id: str, positioned: list[tuple[str, Record]]) -> None:
        """Write messages at their positions, 25 a call: a fork's copy, into a partition no one
        else writes until the fork's session exists (not conditional, not atomic)."""
        pk = keys.record_pk(developer, "session", session_id)
        self._batch_write([{"PutRequest": {"Item": {**key(pk, p), **serialize(m)}}} for p, m in positioned])

    def _history_changed(
        self,
        developer: str,
        session: Record,
        updated_at: str,
        terms: list[str],
        last_message_id: str | None,
        clear_summary: bool,
        open_calls: dict[str, str] | None = None,
        hide: list[tuple[str, str, str]] = (),
        lineage_to: list[list[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """The actions that record a change of the history (a removal) on its session, if the
        session is still as read: its updated_at (and update-order entries) move; `last_message_id`,
        when given, becomes the last message ("" for none); `open_calls`, when given, its tool calls
        awaiting a result; `clear_summary` removes a summary that covered what goes, with a new
        version, so no summary computed before is written over it; `hide` ((range id, after,
        through) each) adds HIDDEN ranges, dropping those they cover; `lineage_to`, when given,
        becomes its LINEAGE (a rewind into what it inherits)."""
        # (placeholders apart from _still's, which names the values as read)
        sets, names, values = ["#updated = :now"], {"#updated": "updated_at"}, {":now": {"S": updated_at}}
        removes: list[str] = []
        if last_message_id is not None:
            sets.append("#last_id = :last_id")
            names["#last_id"] = LAST_MESSAGE_ID
            values[":last_id"] = {"S": last_message_id}
        if open_calls is not None:
            sets.append("#open = :open")
            names["#open"] = OPEN_CALLS
            values[":open"] = codec.value(open_calls)
        if clear_summary:
            sets.append("#version = :next")
            removes += ["#summary", "#until"]
            names.update({"#version": "version", "#summary": "summary", "#until": "summary_until"})
            values[":next"] = {"N": str(int(session["version"]) + 1)}
        if hide:
            names["#hidden"] = HIDDEN
            if HIDDEN in session:  # the map is there (an empty one stays after its last range went)
                covered = {
                    rid
                    for rid, (a, t) in session[HIDDEN].items()
                    for _, after, through in hide
                    if after <= a and t <= through
                }
                for n, (range_id, after, through) in enumerate(hide):
                    sets.append(f"#hidden.#range{n} = :range{n}")
                    names[f"#range{n}"] = range_id
                    values[f":range{n}"] = codec.value([after, through])
                for n, rid in enumerate(sorted(covered)):
                    removes.append(f"#hidden.#covered{n}")
                    names[f"#covered{n}"] = rid
            else:
                sets.append("#hidden = :hidden")
                values[":hidden"] = codec.value({range_id: [after, through] for range_id, after, through in hide})
        if lineage_to is not None:
            sets.append("#lineage = :lineage")
            names["#lineage"] = LINEAGE
            values[":lineage"] = codec.value(lineage_to)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        still = _still(session)
        session_key = key(keys.record_pk(developer, "session", session["id"]), RECORD)
        return [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": session_key,
                    "UpdateExpression": expression,
                    "ConditionExpression": still["ConditionExpression"],
                    "ExpressionAttributeNames": {**still["ExpressionAttributeNames"], **names},
                    "ExpressionAttributeValues": {**still["ExpressionAttributeValues"], **values},
                }
            },
            *(self._delete(key(*k)) for k in keys.update_order_keys(developer, "session", session, terms)),
            *(
                self._put(_entry(k, session))
                for k in keys.update_order_keys(developer, "session", {**session, "updated_at": updated_at}, terms)
            ),
        ]

    def newest_message(self, developer: str, session: Record, before: str | None = None) -> tuple[str, str] | None:
        """(position, id) of the session's newest visible message, or of the newest one before the
        position `before`; None when there is none."""
        for position, message in self.visible_messages(developer, session, descending=True, after=before, page_size=1):
            return position, message["id"]
        return None

    def visible_messages(
        self, developer: str, session: Record, descending: bool = False, after: str | None = None, page_size: int = 100
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """A session's history as every request sees it, as (position, message), oldest first (or
        newest first), strictly past the position `after`, read page by page as the caller consumes
        them: what it inherits read in place from each partition of its lineage (with its own ids
        for those messages), then its own; none in its hidden ranges, which are stepped over (one
        Query per stretch between them, never a page of what they hide)."""
        ranges = hidden_ranges(session)
        sizes = _doubling(page_size + (after is not None), 1000)
        views = parts(session)
        for part in reversed(views) if descending else views:
            low, high = part.low, part.high
            if after is not None:
                low, high = (low, min(high, after)) if descending else (max(low, after), high)
            if low >= high:
                continue
            for position, item in self._span_items(developer, part.partition, low, high, ranges, descending, sizes):
                if position == after or position <= part.low or is_hidden(position, ranges):
                    continue
                message = deserialize(item)
                if not part.own:
                    message["id"] = keys.inherited_id(session["id"], position)
                yield position, message

    def messages(
        self, developer: str, session_id: str, descending: bool = False, after: str | None = None, page_size: int = 100
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The message items of one session's partition as stored, as (position, message) (an
        operator's and a test's view: requests read `visible_messages`)."""
        low, high = (MESSAGE_PREFIX, keys.MESSAGES_END)
        if after is not None:
            low, high = (low, after) if descending else (after, high)
        sizes = _doubling(page_size + (after is not None), 1000)
        for position, item in self._span_items(developer, session_id, low, high, [], descending, sizes):
            if position != after:
                yield position, deserialize(item)

    def _span_items(
        self,
        developer: str,
        partition: str,
        low: str,
        high: str,
        ranges: list[tuple[str, str]],
        descending: bool,
        sizes: Iterator[int],
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(position, raw item) of a session partition's messages from `low` to `high` (both
        inclusive), one Query per stretch between the hidden `ranges`."""
        spans = lineage.visible_spans(low, high, ranges)
        for span_low, span_high in reversed(spans) if descending else spans:
            args = self._query_args(keys.record_pk(developer, "session", partition), descending=descending)
            # BETWEEN keeps the range inside the messages (never the session's own item)
            args["KeyConditionExpression"] += " AND #sk BETWEEN :low AND :high"
            args["ExpressionAttributeNames"]["#sk"] = SK
            args["ExpressionAttributeValues"].update({":low": {"S": span_low}, ":high": {"S": span_high}})
            for answer in self._pages("query", args, lambda: next(sizes)):
                for item in answer["Items"]:
                    yield item[SK]["S"], item

    def write_summary(
        self, developer: str, session_id: str, version: int, summary: str | None, until: str | None
    ) -> bool:
        """Set the session's summary (and the position of the last message it covers) if the
        session is still at `version`; bumps the version so no read-modify-write that started
        earlier can overwrite it. False when the session changed meanwhile (or is gone)."""
        return self._update_session(
            developer,
            session_id,
            "SET #summary = :summary, #until = :until, #version = :next",
            "#version = :version",
            {"#summary": "summary", "#until": "summary_until", "#version": "version"},
            {
                ":summary": codec.value(summary),
                ":until": codec.value(until),
                ":version": {"N": str(version)},
                ":next": {"N": str(version + 1)},
            },
        )

    def _update_session(
        self, developer: str, session_id: str, expression: str, condition: str, names: dict, values: dict
    ) -> bool:
        """One conditional UpdateItem of a session record; False when the condition failed."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_record_key(developer, "session", session_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False

    # idempotency receipts ------------------------------------------------------------------------

    def receipt(self, developer: str, key_hash: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table, Key=key(keys.receipt_pk(developer, key_hash), RECORD), ConsistentRead=True
        ).get("Item")
        return deserialize(item) if item else None

    def put_receipt(self, developer: str, receipt: dict[str, Any]) -> None:
        """Write a receipt on its own (a request that writes nothing else). Raises ReceiptTaken."""
        self._run(self._with_receipt(Transaction(), developer, receipt))

    def _with_receipt(self, transaction: Transaction, developer: str, receipt: Record | None) -> Transaction:
        """The transaction with, last, a Put of the receipt that only succeeds if no live receipt
        has this key (one whose TTL has passed but which DynamoDB has not yet removed counts as
        gone): ReceiptTaken otherwise."""
        if receipt is None:
            return transaction
        return transaction.add(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**key(keys.receipt_pk(developer, receipt["key_hash"]), RECORD), **serialize(receipt)},
                    "ConditionExpression": "attribute_not_exists(#pk) OR #expires < :now",
                    "ExpressionAttributeNames": {"#pk": PK, "#expires": schema.TTL_ATTRIBUTE},
                    "ExpressionAttributeValues": {":now": {"N": str(int(clock.epoch_seconds()))}},
                }
            },
            if_failed=ReceiptTaken(),
        )

    # helpers -----------------------------------------------------------------------------------

    def _parents_live(self, transaction: Transaction, developer: str, parents: list[tuple[str, str]]) -> Transaction:
        """A ConditionCheck per parent (kind, id) that it exists and has not expired: MissingRecord
        naming it otherwise."""
        live = _live(int(clock.epoch_seconds()))
        for parent in parents:
            transaction.add(
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": _record_key(developer, *parent),
                        "ConditionExpression": "attribute_exists(#pk) AND " + live["expression"],
                        "ExpressionAttributeNames": {"#pk": PK, **live["names"]},
                        "ExpressionAttributeValues": live["values"],
                    }
                },
                if_failed=MissingRecord(*parent),
            )
        return transaction

    def _gone_or_changed(self, developer: str, kind: str, record_id: str) -> Callable[[Any], Exception]:
        """What a failed condition on a record as read means, once read again: MissingRecord if it
        is gone, else VersionConflict."""
        return lambda _: (
            MissingRecord(kind, record_id) if self.get(developer, kind, record_id) is None else VersionConflict()
        )

    def _put(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"Put": {"TableName": self.table, "Item": item}}

    def _delete(self, typed_key: dict[str, Any]) -> dict[str, Any]:
        return {"Delete": {"TableName": self.table, "Key": typed_key}}

    def _query_args(
        self,
        pk: str,
        prefix: str | None = None,
        descending: bool = False,
        projection: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "ScanIndexForward": not descending,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": PK},
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

    def _pages(
        self, operation: str, args: dict[str, Any], next_limit: Callable[[], int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Each answer of a Query or Scan, following LastEvaluatedKey past DynamoDB's 1 MB pages,
        read as the caller consumes them; `next_limit()`, if given, sets each page's Limit."""
        while True:
            if next_limit is not None:
                args["Limit"] = next_limit()
            answer = getattr(self.client, operation)(**args)
            yield answer
            if "LastEvaluatedKey" not in answer:
                return
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _query(self, pk: str, **options: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query."""
        for answer in self._pages("query", self._query_args(pk, **options)):
            yield from answer["Items"]

    def _until_processed(
        self, operation: str, request: dict[str, Any], leftover: str, attempts: int = BATCH_ATTEMPTS
    ) -> Iterator[dict[str, Any]]:
        """Each answer of a batch call, what DynamoDB left unprocessed (under throttling) sent
        again after a backoff, until nothing is left."""
        for attempt in range(attempts):
            if attempt:
                backoff.pause(attempt, first=0.05, most=1.0)
            answer = getattr(self.client, operation)(RequestItems=request)
            yield answer
            request = answer.get(leftover) or {}
            if not request:
                return
        raise unavailable("DynamoDB kept items unprocessed after retries")

    def _batch_get(self, typed_keys: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The items at up to 100 keys (consistent reads); absent ones are simply not there."""
        request = {self.table: {"Keys": typed_keys, "ConsistentRead": True}}
        for answer in self._until_processed("batch_get_item", request, "UnprocessedKeys"):
            yield from answer["Responses"].get(self.table, [])

    def _batch_write(self, requests: list[dict[str, Any]], attempts: int = BATCH_ATTEMPTS) -> None:
        """Put and delete requests, 25 a call. Not conditional and not atomic."""
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            for _ in self._until_processed(
                "batch_write_item",
                {self.table: requests[start : start + BATCH_WRITE_MAX]},
                "UnprocessedItems",
                attempts,
            ):
                pass

    def _run(self, transaction: Transaction, retryable: frozenset[str] = _RETRYABLE_CANCELLATIONS) -> None:
        """Run a transaction; if a condition failed, raise what its action said that means."""
        cancelled = self._cancelled(transaction.actions, retryable)
        if cancelled is not None:
            raise transaction.failure(*cancelled)

    def _cancelled(
        self, actions: list[dict[str, Any]], retryable: frozenset[str] = _RETRYABLE_CANCELLATIONS
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
                backoff.pause(attempt, first=0.02, most=0.5)
        raise AssertionError("unreachable")


def _doubling(first: int, most: int) -> Iterator[int]:
    """Page sizes: `first`, then doubling up to `most` (a short answer reads little, a long one
    few times)."""
    size = first
    while True:
        yield size
        size = min(size * 2, most)
