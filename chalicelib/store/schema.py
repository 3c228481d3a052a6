"""The one definition of the DynamoDB table. Tests, `make run`, the admin CLI and infra/stack.py
build it from here.

A single table with a string partition key `pk` and sort key `sk`; store/keys.py owns what goes in
them (see docs/design.md). No secondary index: every access pattern is a GetItem or a Query on
the base table, so reads are strongly consistent and writes happen in one transaction.
"""

from __future__ import annotations

import os
from typing import Any

from .client import translated

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"
DEFAULT_TABLE_NAME = "sessions"
# The table's stream feeds the cascades (chalicelib/rules/cascades.py): a purge marker's insert
# needs its new image, a TTL removal its old one.
STREAM_VIEW_TYPE = "NEW_AND_OLD_IMAGES"


def table_name() -> str:
    return os.environ.get("SESSIONS_TABLE", DEFAULT_TABLE_NAME)


def table_definition(name: str, stream: bool = True) -> dict[str, Any]:
    """Arguments for CreateTable. `stream=False` only for tests that do without the stream: on
    DynamoDB Local it slows every write (docs/design.md, "Cascades")."""
    return {
        "TableName": name,
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        **({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE}} if stream else {}),
    }


@translated
def create_table(client: Any, name: str, stream: bool = True) -> None:
    """Create the table (and turn on its TTL) unless it exists already; a table made before it had
    a stream gets one."""
    try:
        client.create_table(**table_definition(name, stream))
    except client.exceptions.ResourceInUseException:
        if stream and "StreamSpecification" not in client.describe_table(TableName=name)["Table"]:
            client.update_table(TableName=name, StreamSpecification=table_definition(name)["StreamSpecification"])
        return
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
