"""Idempotency receipts: read one, write one alone, or add one to a transaction."""

from __future__ import annotations

from typing import Any

from chalicelib.shared import clock

from . import keys, schema
from .calls import Calls
from .client import translating
from .codec import deserialize, key, serialize
from .errors import ReceiptTaken
from .items import (
    PK,
    Item,
)
from .keys import RECORD
from .transaction import Transaction


@translating
class Receipts(Calls):
    # idempotency receipts ------------------------------------------------------------------------

    def receipt(self, developer: str, key_hash: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table, Key=key(keys.receipt_pk(developer, key_hash), RECORD), ConsistentRead=True
        ).get("Item")
        return deserialize(item) if item else None

    def put_receipt(self, developer: str, receipt: dict[str, Any]) -> None:
        """Write a receipt on its own (a request that writes nothing else). Raises ReceiptTaken."""
        self._run(self._with_receipt(Transaction(), developer, receipt))

    def _with_receipt(self, transaction: Transaction, developer: str, receipt: Item | None) -> Transaction:
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
