"""Agents, users and sessions as records with their index entries (one transaction each), the
API keys, and the index reads that lists are made of."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from boto3.dynamodb.conditions import Attr

from chalicelib.shared import clock

from . import keys
from .calls import BATCH_GET_MAX, Calls, doubling
from .client import translating
from .codec import deserialize, key, serialize
from .errors import KeyTaken, MissingRecord, VersionConflict
from .items import (
    EXPIRES,
    PK,
    SK,
    Item,
    Record,
    condition,
    fork_sources,
    index_entry,
    not_expired,
    record_key,
    still_as_read,
)
from .keys import RECORD
from .stored import record_of
from .transaction import Transaction


@translating
class Records(Calls):
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

    def get(self, developer: str, kind: str, record_id: str) -> Record | None:
        item = self.client.get_item(
            TableName=self.table, Key=record_key(developer, kind, record_id), ConsistentRead=True
        ).get("Item")
        return record_of(item) if item else None

    def get_many(self, developer: str, kind: str, ids: list[str]) -> dict[str, Record]:
        """Records by id (consistent reads); ids that do not exist are simply absent."""
        found: dict[str, Record] = {}
        for start in range(0, len(ids), BATCH_GET_MAX):
            wanted = [record_key(developer, kind, i) for i in ids[start : start + BATCH_GET_MAX]]
            for item in self._batch_get(wanted):
                record = record_of(item)
                found[record["id"]] = record
        return found

    def create(
        self,
        developer: str,
        kind: str,
        record: Record,
        parents: list[tuple[str, str]],
        terms: list[str],
        receipt: Item | None = None,
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
                    "Item": {**record_key(developer, kind, record["id"]), **serialize(record)},
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                }
            }
        )
        transaction.extend(self._put(index_entry(k, record)) for k in keys.entry_keys(developer, kind, record, terms))
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
                    "Item": {**record_key(developer, kind, new["id"]), **serialize(new)},
                    **still_as_read(old),
                }
            },
            if_failed=self._gone_or_changed(developer, kind, old["id"]),
        )
        transaction.extend(self._delete(key(*k)) for k in sorted(before - after))
        transaction.extend(self._put(index_entry(k, new)) for k in sorted(after - kept))
        self._run(transaction)

    def delete(
        self, developer: str, kind: str, record: Record, terms: list[str], parents: list[tuple[str, str]] = ()
    ) -> None:
        """Remove a record and its index entries, and leave a purge marker for whatever lives
        under it (history, child sessions), in one transaction, if the record is still at the
        version and updated_at read (else its entries may have moved). Raises MissingRecord if
        someone else deleted it first, VersionConflict if it changed."""
        transaction = Transaction().add(
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": record_key(developer, kind, record["id"]),
                    **still_as_read(record),
                }
            },
            if_failed=self._gone_or_changed(developer, kind, record["id"]),
        )
        transaction.extend(self._delete(key(*k)) for k in keys.entry_keys(developer, kind, record, terms))
        # The marker names the parents, so a parent's resumed cascade can find this one, and
        # the sessions a fork reads, whose references it drops when its purge is done.
        marker = {"parents": [keys.purge_sk(k, i) for k, i in parents] or None, **fork_sources(record)}
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
        marker = {"parents": [keys.purge_sk(k, i) for k, i in parents] or None, "expired": True, **fork_sources(record)}
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
        live = condition(not_expired(int(clock.epoch_seconds())))  # an expired record's entries wait for TTL
        args["FilterExpression"] = live["ConditionExpression"]
        args["ExpressionAttributeNames"].update(live["ExpressionAttributeNames"])
        args["ExpressionAttributeValues"] = {
            **args.get("ExpressionAttributeValues", {}),
            **live["ExpressionAttributeValues"],
        }
        if after is not None:
            args["KeyConditionExpression"] += f" AND #sk {'<' if descending else '>'} :after"
            args["ExpressionAttributeNames"]["#sk"] = SK
            args["ExpressionAttributeValues"][":after"] = {"S": after}
        read = 0
        sizes = doubling(page_size, 100)

        def next_limit() -> int:
            size = next(sizes)
            return size if limit is None else min(size, limit - read)

        for answer in self._pages("query", args, next_limit):
            for item in answer["Items"]:
                read += 1
                yield keys.IndexEntry(item[SK]["S"], keys.id_in(item[SK]["S"]))
            if limit is not None and read >= limit:
                return

    def _parents_live(self, transaction: Transaction, developer: str, parents: list[tuple[str, str]]) -> Transaction:
        """A ConditionCheck per parent (kind, id) that it exists and has not expired: MissingRecord
        naming it otherwise."""
        live = condition(Attr(PK).exists() & not_expired(int(clock.epoch_seconds())))
        for parent in parents:
            transaction.add(
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": record_key(developer, *parent),
                        **live,
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
