"""Purge markers (a cascading delete, a rewind's range, an unfinished copy) and the batch that
deletes a partition's messages, but those forks still read."""

from __future__ import annotations

from . import codec, keys
from .calls import BATCH_WRITE_MAX, Calls
from .client import translating
from .codec import deserialize, key
from .items import (
    PK,
    SK,
    Item,
)
from .keys import MESSAGE_PREFIX


@translating
class Purges(Calls):
    # cascading deletes ---------------------------------------------------------------------------

    def purge_marker(self, developer: str, kind: str, record_id: str) -> Item | None:
        """The purge marker of a record (a cascade, a rewind's range: `history`, `<session>#<range>`)
        that has not finished, with what it says; None when there is none."""
        item = self.client.get_item(
            TableName=self.table, Key=key(keys.purge_pk(developer), keys.purge_sk(kind, record_id)), ConsistentRead=True
        ).get("Item")
        return deserialize(item) if item else None

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
