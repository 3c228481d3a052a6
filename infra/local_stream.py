"""`make run`'s stand-in for what AWS runs beside the table: the Lambda that DynamoDB Streams
invokes with the table's changes (the same handler, chalicelib/web/stream.py), and DynamoDB's TTL,
which the local engines do not run.

- **The stream.** A thread reads every shard of the local table's stream (DynamoDB Local and
  moto's server both serve the Streams API) from the moment it starts, and hands each batch to
  the handler. A batch that fails is retried (a second later, five times); one that still fails
  is logged and left: the purge markers it was about stay, for `sessions-admin finish-deletes`.
- **Expiry.** Items with an `expires_at` are learned from the stream (and, at start, from one Scan)
  and removed in the second they expire, as TTL would; an expired record's removal goes to the
  handler as a TTL removal, so its history and sessions follow.
- **At start**, the purge markers a previous run left unfinished are finished.
"""

from __future__ import annotations

import heapq
import sys
import threading
import time
from typing import Any

POLL_SECONDS = 0.25
ATTEMPTS = 5
REPORT_AFTER = 5  # failures in a row (about 5 s) before the stream's reading is said to fail


class LocalCascades:
    def __init__(self, endpoint: str, table: str) -> None:
        import boto3

        from chalicelib.store import Store, client_config

        self.table = table
        self.client = boto3.client("dynamodb", endpoint_url=endpoint, config=client_config())
        self.streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, config=client_config())
        self.store = Store(self.client, table)
        self.expiring: list[tuple[int, str, str]] = []  # (expires_at, pk, sk), a heap
        self.lock = threading.Lock()  # the heap is fed by the stream and the start's Scan
        self.stopping = threading.Event()
        self.handled = 0  # batches handled (make run's tests wait on it)

    def start(self) -> None:
        # What the threads below run is imported here, on the main thread: a daemon thread still
        # importing (pydantic, under rules.deletes) when a stop comes holds the import lock that the
        # interpreter's shutdown may need, and the process then hung instead of exiting (seen once
        # in CI, a SIGTERM moments after the start, on a loaded machine).
        import chalicelib.rules.deletes  # noqa: F401
        import chalicelib.store.keys  # noqa: F401
        import chalicelib.web.stream  # noqa: F401

        arn = self.client.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        shards = self._shards(arn)
        # from now on: what was written before is finished below, not replayed
        iterators = {shard: self._iterator(arn, shard, "LATEST") for shard in shards}
        threading.Thread(target=self._follow, args=(arn, iterators), daemon=True, name="local-stream").start()
        threading.Thread(target=self._expire, daemon=True, name="local-ttl").start()
        # in the background too: a previous run's unfinished purges must not hold up serving
        threading.Thread(target=self._seed, daemon=True, name="local-resume").start()

    def stop(self) -> None:
        self.stopping.set()

    # --- the stream ----------------------------------------------------------------------------

    def _shards(self, arn: str) -> list[str]:
        return [
            shard["ShardId"] for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        ]

    def _iterator(self, arn: str, shard: str, kind: str) -> str:
        return self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=kind)["ShardIterator"]

    def _follow(self, arn: str, iterators: dict[str, str | None]) -> None:
        failures = 0
        while not self.stopping.is_set():
            busy = False
            try:
                for shard in self._shards(arn):
                    if shard not in iterators:  # a shard opened since: all of it
                        iterators[shard] = self._iterator(arn, shard, "TRIM_HORIZON")
                for shard, iterator in list(iterators.items()):
                    if iterator is not None:
                        iterators[shard], read = self._read(iterator)
                        busy = busy or read
                failures = 0
            except Exception as error:  # the database is away: say so once it stays away (a database
                failures += 1  # that died is make run's own message, and it stops)
                if failures == REPORT_AFTER and not self.stopping.is_set():
                    print(f"make run: reading the table's stream failed: {error}", file=sys.stderr, flush=True)
                self.stopping.wait(1)
            if not busy:  # caught up: wait for more; behind: read on at once
                self.stopping.wait(POLL_SECONDS)

    def _read(self, iterator: str) -> tuple[str | None, bool]:
        """Handle one page of a shard: the next iterator, and whether the page held records."""
        from chalicelib.web import stream

        page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
        records = page.get("Records", [])
        if records:
            self._learn(records)
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    stream.handle(self.store, {"Records": records})
                    break
                except Exception as error:
                    if attempt == ATTEMPTS:
                        print(
                            f"make run: a batch of the table's stream failed {ATTEMPTS} times ({error}); "
                            "its purge markers stay for `sessions-admin finish-deletes`",
                            file=sys.stderr,
                            flush=True,
                        )
                    else:
                        self.stopping.wait(1)
            self.handled += 1
        return page.get("NextShardIterator"), bool(records)

    # --- expiry --------------------------------------------------------------------------------

    def _learn(self, records: list[dict[str, Any]]) -> None:
        from chalicelib.store import EXPIRES

        for record in records:
            image = record.get("dynamodb", {}).get("NewImage") or {}
            if EXPIRES in image and "N" in image[EXPIRES]:
                keys = record["dynamodb"]["Keys"]
                with self.lock:
                    heapq.heappush(self.expiring, (int(image[EXPIRES]["N"]), keys["pk"]["S"], keys["sk"]["S"]))

    def _seed(self) -> None:
        """What expires, and the purges a previous run left, from one Scan of the table."""
        for attempt in range(1, REPORT_AFTER + 1):  # a database that died is make run's own message
            try:
                self._scan_and_resume()
                return
            except Exception as error:
                if self.stopping.wait(1):
                    return
                if attempt == REPORT_AFTER:
                    print(f"make run: finishing a previous run's purges failed: {error}", file=sys.stderr, flush=True)

    def _scan_and_resume(self) -> None:
        from chalicelib.rules import deletes
        from chalicelib.store import EXPIRES
        from chalicelib.store.keys import parse

        markers = []
        args: dict[str, Any] = {"TableName": self.table}
        while True:
            page = self.client.scan(**args)
            for item in page["Items"]:
                if EXPIRES in item and "N" in item[EXPIRES]:
                    with self.lock:
                        heapq.heappush(self.expiring, (int(item[EXPIRES]["N"]), item["pk"]["S"], item["sk"]["S"]))
                key = parse(item["pk"]["S"], item["sk"]["S"])
                if key.what == "purge":
                    markers.append(key)
            if "LastEvaluatedKey" not in page:
                break
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        for key in markers:
            deletes.resume(self.store, key.developer, key.kind, key.record_id, deletes.deadline_after(600))

    def _expire(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                while True:
                    with self.lock:
                        if not self.expiring or self.expiring[0][0] > time.time():
                            break
                        expires, pk, sk = self.expiring[0]
                    self._remove_if_expired(pk, sk, expires)
                    with self.lock:  # only once handled: a failure tries it again
                        heapq.heappop(self.expiring)
                failures = 0
            except Exception as error:
                failures += 1
                if failures == REPORT_AFTER and not self.stopping.is_set():
                    print(f"make run: removing expired items failed: {error}", file=sys.stderr, flush=True)
                self.stopping.wait(1)
            self.stopping.wait(POLL_SECONDS)

    def _remove_if_expired(self, pk: str, sk: str, expires: int) -> None:
        """Delete the item if it still has the expiry that came due, as TTL would (one conditional
        DeleteItem, which hands the item back); an expired record's removal goes to the handler as
        TTL's."""
        from chalicelib.rules import cascades
        from chalicelib.store import EXPIRES
        from chalicelib.store.codec import deserialize

        try:
            item = self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                ConditionExpression="#e = :due",
                ExpressionAttributeNames={"#e": EXPIRES},
                ExpressionAttributeValues={":due": {"N": str(expires)}},
                ReturnValues="ALL_OLD",
            )["Attributes"]
        except self.client.exceptions.ConditionalCheckFailedException:
            return  # gone already, or renewed (its new expiry came through the stream)
        old = deserialize(item)
        if sk == "#record" or old.get("fork"):  # what TTL's removal of these starts, through the stream
            change = cascades.Change("REMOVE", pk, sk, old=old, by_ttl=True, fork=bool(old.get("fork")))
            cascades.apply(self.store, [change])
