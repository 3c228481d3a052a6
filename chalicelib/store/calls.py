"""The DynamoDB calls every aggregate of the store makes, and only they: a Query's arguments and
its pages, batch gets and writes with what DynamoDB left unprocessed sent again, and a
transaction run with what its failed condition means raised (transaction.py). Retries wait with
the one backoff (shared/backoff.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.shared import backoff, telemetry

from .client import unavailable, watch_writes
from .items import PK, SK
from .transaction import Transaction

BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
TRANSACT_ATTEMPTS = 5
BATCH_ATTEMPTS = 8
_THROTTLED = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})
_RETRYABLE_CANCELLATIONS = _THROTTLED | {"TransactionConflict"}


def _only_conflicts(exc: Any) -> bool:
    codes = {reason.get("Code") for reason in exc.response.get("CancellationReasons") or []}
    return bool(codes) and codes <= {"TransactionConflict", "None", None}


class Calls:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        telemetry.instrument(client)  # each request's log line counts its DynamoDB calls
        watch_writes(client)

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


def doubling(first: int, most: int) -> Iterator[int]:
    """Page sizes: `first`, then doubling up to `most` (a short answer reads little, a long one
    few times)."""
    size = first
    while True:
        yield size
        size = min(size * 2, most)
