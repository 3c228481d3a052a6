"""A thread's checkpoints (LangGraph's): one item per checkpoint, and one per pending write, in
the session's own partition before its messages (keys.checkpoint_sk, checkpoint_write_sk), so a
Query of one key range reads checkpoints newest first with their writes beside them, and a
session's purge takes them with its history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from boto3.dynamodb.types import Binary

from . import codec, keys
from .calls import BATCH_WRITE_MAX, Calls, doubling
from .client import translating
from .codec import deserialize, key, serialize
from .items import PK, SK, Item
from .keys import RECORD
from .transaction import Transaction

# Actions of one TransactWriteItems, the check included; its 4 MB bound is the caller's (each
# value is bounded, rules/checkpoints.py).
WRITES_PER_TRANSACTION = 50


def _plain(item: dict[str, Any]) -> Item:
    values = deserialize(item)
    return {name: value.value if isinstance(value, Binary) else value for name, value in values.items()}


@translating
class Checkpoints(Calls):
    # (the session's check is records.py's _parents_live, through the Store facade's MRO, as forks.py's)

    def put_checkpoint(self, developer: str, session_id: str, checkpoint: Item) -> None:
        """Write (or write again) a checkpoint, if its session exists and has not expired:
        MissingRecord otherwise. One transaction: the check and the Put."""
        pk = keys.record_pk(developer, "session", session_id)
        sk = keys.checkpoint_sk(checkpoint["checkpoint_ns"], checkpoint["checkpoint_id"])
        transaction = self._parents_live(Transaction(), developer, [("session", session_id)])
        self._run(transaction.add(self._put({**key(pk, sk), **serialize(checkpoint)})))

    def put_checkpoint_writes(
        self, developer: str, session_id: str, namespace: str, checkpoint_id: str, writes: list[Item]
    ) -> None:
        """Pending writes of a checkpoint, if its session exists and has not expired (MissingRecord
        if not). The checkpoint itself need not be there yet: LangGraph saves a checkpoint in the
        background while its tasks' writes arrive. A write of a non-negative index is written only
        where none is (its task's write is kept, so a repeat changes nothing), one of a negative
        index (a special channel) over what is there. A transaction per WRITES_PER_TRANSACTION."""
        pk = keys.record_pk(developer, "session", session_id)
        for start in range(0, len(writes), WRITES_PER_TRANSACTION):
            transaction = self._parents_live(Transaction(), developer, [("session", session_id)])
            for write in writes[start : start + WRITES_PER_TRANSACTION]:
                sk = keys.checkpoint_write_sk(namespace, checkpoint_id, write["task_id"], write["idx"])
                put = self._put({**key(pk, sk), **serialize(write)})
                if write["idx"] >= 0:
                    put["Put"].update(
                        {"ConditionExpression": "attribute_not_exists(#sk)", "ExpressionAttributeNames": {"#sk": SK}}
                    )
                transaction.add(put)
            self._run(transaction)

    def checkpoint_writes_there(
        self, developer: str, session_id: str, namespace: str, checkpoint_id: str
    ) -> set[tuple[str, int]]:
        """(task id, index) of each write a checkpoint has."""
        pk = keys.record_pk(developer, "session", session_id)
        prefix = keys.checkpoint_prefix(namespace, checkpoint_id) + "w#"
        return {
            (item["task_id"]["S"], int(item["idx"]["N"]))
            for item in self._query(pk, prefix=prefix, projection="task_id, idx")
        }

    def checkpoint_items(
        self,
        developer: str,
        session_id: str,
        namespace: str | None,
        checkpoint_id: str | None = None,
        before: str | None = None,
    ) -> Iterator[Item]:
        """A session's checkpoint and write items, newest checkpoint first (its writes just
        before it, in their key order reversed): of one namespace (None: all, each namespace's
        run in turn), of one checkpoint, or of those with an id strictly before `before`."""
        pk = keys.record_pk(developer, "session", session_id)
        prefix = keys.checkpoint_prefix(namespace, checkpoint_id) if checkpoint_id else keys.checkpoints_of(namespace)
        args = self._query_args(pk, prefix=prefix, descending=True)
        if before is not None and namespace is not None and checkpoint_id is None:
            args["KeyConditionExpression"] = "#pk = :pk AND #sk BETWEEN :low AND :high"
            args["ExpressionAttributeValues"].pop(":prefix")
            args["ExpressionAttributeValues"].update(
                {":low": {"S": prefix}, ":high": {"S": keys.checkpoint_prefix(namespace, before)[:-1]}}
            )
        # read as consumed, in pages that start small and double: the latest checkpoint (a saver's
        # most frequent read) costs one short Query, not a 1 MB page of the thread
        sizes = doubling(8, 1000)
        for answer in self._pages("query", args, lambda: next(sizes)):
            for item in answer["Items"]:
                yield {**_plain(item), "_sk": item[SK]["S"]}

    def delete_checkpoint(self, developer: str, session_id: str, namespace: str, checkpoint_id: str) -> int:
        """A checkpoint and its writes; how many items went."""
        pk = keys.record_pk(developer, "session", session_id)
        found = list(self._query(pk, prefix=keys.checkpoint_prefix(namespace, checkpoint_id), projection=f"{PK}, {SK}"))
        self._batch_write([{"DeleteRequest": {"Key": codec.only_key(item)}} for item in found])
        return len(found)

    def delete_checkpoints_batch(self, developer: str, session_id: str) -> bool:
        """One Query page (up to 200) of a session partition's checkpoints and writes deleted; True
        while more may remain (a purge loops until False, so an interrupted one resumes)."""
        args = self._query_args(
            keys.record_pk(developer, "session", session_id),
            prefix=keys.CHECKPOINT_PREFIX,
            projection=f"{PK}, {SK}",
            limit=BATCH_WRITE_MAX * 8,
        )
        answer = self.client.query(**args)
        self._batch_write([{"DeleteRequest": {"Key": codec.only_key(item)}} for item in answer["Items"]])
        return "LastEvaluatedKey" in answer

    def session_exists(self, developer: str, session_id: str) -> bool:
        item = self.client.get_item(
            TableName=self.table,
            Key=key(keys.record_pk(developer, "session", session_id), RECORD),
            ConsistentRead=True,
            ProjectionExpression="#sk",
            ExpressionAttributeNames={"#sk": SK},
        ).get("Item")
        return item is not None
