"""Forks: a copy-on-write fork made in one transaction (its lineage, its references in the
partitions it reads, the original's fork point), the references read and dropped, and the marker
under which a session from before positional ids is copied."""

from __future__ import annotations

from chalicelib.shared import clock

from . import keys, lineage
from .calls import Calls
from .client import translating
from .codec import key, serialize
from .items import (
    EXPIRES,
    FORK_MARKER_SECONDS,
    PK,
    SK,
    Item,
    SessionRecord,
    index_entry,
    record_key,
    still_as_read,
)
from .lineage import FORKED_THROUGH
from .transaction import Transaction


@translating
class Forks(Calls):
    # forks ---------------------------------------------------------------------------------------

    def create_fork(
        self,
        developer: str,
        record: SessionRecord,
        parent: SessionRecord,
        parents: list[tuple[str, str]],
        terms: list[str],
        receipt: Item | None = None,
    ) -> None:
        """Create a fork of `parent` in one transaction: as `create` does (its agent and user
        checked, the record and its index entries, the receipt), and, for each partition its
        LINEAGE reads, a reference item there (`fork#<id>`, with how far it reads), so no purge
        takes what the fork reads; and the parent's FORKED_THROUGH moved to the fork point, if the
        parent is still as read (else VersionConflict: its hidden ranges may have moved)."""
        point = lineage.fork_point(record)
        forked = max(p for p in (parent.get(FORKED_THROUGH), point) if p is not None)
        still = still_as_read(parent)
        transaction = self._parents_live(Transaction(), developer, parents)
        transaction.add(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": record_key(developer, "session", parent["id"]),
                    "UpdateExpression": "SET #forked = :forked_now",
                    "ConditionExpression": still["ConditionExpression"],
                    "ExpressionAttributeNames": {**still["ExpressionAttributeNames"], "#forked": FORKED_THROUGH},
                    "ExpressionAttributeValues": {**still["ExpressionAttributeValues"], ":forked_now": {"S": forked}},
                }
            },
            if_failed=self._gone_or_changed(developer, "session", parent["id"]),
        )
        transaction.add(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**record_key(developer, "session", record["id"]), **serialize(record)},
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                }
            }
        )
        transaction.extend(
            self._put(index_entry(k, record)) for k in keys.entry_keys(developer, "session", record, terms)
        )
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
