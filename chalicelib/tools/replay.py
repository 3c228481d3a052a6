"""Replaying the stream batches the cascades function gave up on (docs/operations.md, "Cascades
that failed"). Lambda's on-failure destination receives, for each, where the batch was in the
stream (`DDBStreamBatchInfo`: stream, shard, first and last sequence numbers), not its records;
so each is read again from the stream (which keeps 24 hours) and handed to the same handler. A
message is deleted from the queue only once its batch was handled."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.store import Store


def batch_records(streams: Any, info: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream records from the batch's first sequence number to its last."""
    iterator = streams.get_shard_iterator(
        StreamArn=info["streamArn"],
        ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    last = int(info["endSequenceNumber"])
    records: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        for record in page["Records"]:
            if int(record["dynamodb"]["SequenceNumber"]) > last:
                return records
            records.append(record)
        if not page["Records"]:
            return records
        iterator = page.get("NextShardIterator")
    return records


def replay_failed(store: Store, streams: Any, sqs: Any, queue_url: str) -> tuple[int, int]:
    """Handle every failed batch the queue holds; (batches replayed, records handed over)."""
    from chalicelib.web import stream

    batches = records_total = 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return batches, records_total
        for message in messages:
            info = json.loads(message["Body"])["DDBStreamBatchInfo"]
            records = batch_records(streams, info)
            stream.handle(store, {"Records": records})  # raises: the message stays for the next run
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            batches += 1
            records_total += len(records)
