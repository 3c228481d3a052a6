"""Operators' reads and writes of whole key spaces: full-table Scans and unconditional batch
writes. Never a request path (the runtime's IAM role cannot Scan: store/iam.py); the consistency
check and the admin CLI's export and import (chalicelib/tools/) use them with their own
credentials."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import keys
from .client import translated
from .codec import deserialize, key_of
from .schema import PARTITION_KEY as PK
from .table import Store

OPERATOR_BATCH_ATTEMPTS = 12  # a restore may meet more throttling than a request would wait out


@translated
def developer_items(store: Store, developer: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every `dev#<d>#` item of a developer as (pk, sk, attributes): a full-table Scan."""
    args: dict[str, Any] = {
        "TableName": store.table,
        "FilterExpression": "begins_with(#pk, :prefix)",
        "ConsistentRead": True,
        "ExpressionAttributeNames": {"#pk": PK},
        "ExpressionAttributeValues": {":prefix": {"S": keys.developer_prefix(developer)}},
    }
    for answer in store._pages("scan", args):
        for item in answer["Items"]:
            yield (*key_of(item), deserialize(item))


@translated
def developer_pages_typed(store: Store, developer: str) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """Everything that is a developer's, as DynamoDB's typed items, page by page as (items,
    how many items the page scanned): every `dev#<d>#` item and every `apikey#` record naming
    the developer (listed or not). A strongly consistent full-table Scan."""
    args: dict[str, Any] = {
        "TableName": store.table,
        "ConsistentRead": True,
        "FilterExpression": "begins_with(#pk, :prefix) OR (begins_with(#pk, :apikey) AND #developer = :developer)",
        "ExpressionAttributeNames": {"#pk": PK, "#developer": "developer_id"},
        "ExpressionAttributeValues": {
            ":prefix": {"S": keys.developer_prefix(developer)},
            ":apikey": {"S": keys.API_KEY_PREFIX},
            ":developer": {"S": developer},
        },
    }
    for answer in store._pages("scan", args):
        yield answer["Items"], answer.get("ScannedCount", len(answer["Items"]))


@translated
def put_items(store: Store, items: list[dict[str, Any]]) -> None:
    """Write typed items exactly as given, 25 a call, unprocessed ones sent again with backoff."""
    store._batch_write([{"PutRequest": {"Item": item}} for item in items], OPERATOR_BATCH_ATTEMPTS)


@translated
def delete_items(store: Store, typed_keys: list[dict[str, Any]]) -> None:
    """Delete items by typed key, 25 a call (an operator's replace-import)."""
    store._batch_write([{"DeleteRequest": {"Key": k}} for k in typed_keys])
