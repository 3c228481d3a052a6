"""The table's stream as tests read it: the records written since the last read, on DynamoDB
Local (its Streams API) and on moto (its backend, which its mock does not route), and a TTL
removal's record, which no local engine emits. Shared by the cascade and fork tests."""

from __future__ import annotations

import json
from typing import Any

import boto3

from chalicelib.store import client_config
from chalicelib.web import stream


class Stream:
    """The test table's stream, read from where the last read stopped."""

    def __init__(self, table) -> None:
        client = table.client
        arn = client.describe_table(TableName=table.table)["Table"]["LatestStreamArn"]
        endpoint = client.meta.endpoint_url
        if endpoint.startswith("http://127.0.0.1"):  # DynamoDB Local serves the Streams API
            self.client = boto3.client(
                "dynamodbstreams",
                region_name="us-east-1",
                endpoint_url=endpoint,
                config=client_config(),
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )
        else:  # moto keeps the records, but its mock does not route the Streams API: read its backend
            self.client = MotoStreams()
        self.arn = arn
        self.iterators: dict[str, str] = {}

    def records(self) -> list[dict[str, Any]]:
        """Every record written since the last call, shard by shard, in order."""
        found: list[dict[str, Any]] = []
        for shard in self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            iterator = (
                self.iterators.get(shard["ShardId"])
                or self.client.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            while iterator:
                page = self.client.get_records(ShardIterator=iterator, Limit=1000)
                found += page["Records"]
                self.iterators[shard["ShardId"]] = iterator = page.get("NextShardIterator")
                if not page["Records"]:
                    break
        return found


class MotoStreams:
    """The three Streams API calls used above, answered by moto's backend as the API would."""

    def __init__(self) -> None:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        self.backend = dynamodbstreams_backends["123456789012"]["us-east-1"]

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:  # noqa: N803 (the API's names)
        return {"StreamDescription": self.backend.describe_stream(StreamArn)}

    def get_shard_iterator(  # noqa: N803
        self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str | None = None
    ) -> dict[str, Any]:
        number = int(SequenceNumber) if SequenceNumber is not None else None  # (moto counts in ints)
        iterator = self.backend.get_shard_iterator(StreamArn, ShardId, ShardIteratorType, number)
        return {"ShardIterator": iterator.arn}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        return json.loads(json.dumps(self.backend.get_records(ShardIterator, Limit), default=str))


def event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


def removed_by_ttl(table, keys: dict[str, Any], image: dict[str, Any] | None = None) -> dict[str, Any]:
    """Delete the item as DynamoDB's TTL does, and the REMOVE record its stream would carry (no
    local engine emits one): TTL's identity, the item's old image."""
    if image is None:
        image = table.client.get_item(TableName=table.table, Key=keys)["Item"]
    table.client.delete_item(TableName=table.table, Key=keys)
    return {"eventName": "REMOVE", "userIdentity": stream.TTL_IDENTITY, "dynamodb": {"Keys": keys, "OldImage": image}}
