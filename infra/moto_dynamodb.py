"""moto's DynamoDB, fixed to keep its speed and its memory in proportion to the data. Written once
and used twice: by the tests' in-process mock (tests/conftest.py) and, run as a program, by
`make run`'s fallback server (`python -m infra.moto_dynamodb -p PORT`).

What moto 5 does, and what is done instead:
- **A rollback copy of the whole table for every transaction action.** TransactWriteItems
  deep-copies each table it touches once per action, so that a cancelled transaction can be
  undone: a 7-action write to a table of n items copies 7n items, and every write costs more
  than the last. Instead, the items the transaction names are saved (one copy each) and put back
  if it fails: the same all-or-nothing, at the cost of the transaction, not of the table.
- **Every model object ever made is kept.** moto's BaseModel appends each instance to a class
  list, for its dashboard: every item ever written, and every rollback copy of a table, stays in
  memory for the life of the process (about 150 MB per 100 history appends, past 23 GB for one
  cascading delete). DynamoDB's models are no longer tracked.
- **Every Query reads and sorts the whole table**, then keeps the partition asked for: a Query
  costs O(n log n) in the table's size. A Query on the table (not an index) now starts from
  the partition alone.
- **A partition whose last item was deleted stays, empty.** It is dropped.
- **Concurrent calls interleave** (the server only: the tests make calls atomic on the client
  side where they need it, tests/test_deletes.py). DynamoDB applies each call atomically; the
  server runs one DynamoDB call at a time.
"""

from __future__ import annotations

import copy
import functools
import sys
import threading
from typing import Any

_FIXED = "_sessions_fixed"


def fix() -> None:
    """Apply the in-process fixes (idempotent)."""
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, _FIXED, False):
        return
    _untrack_models()
    _query_one_partition()
    _drop_empty_partitions()
    _roll_back_only_what_changed(models, DynamoDBBackend)
    setattr(DynamoDBBackend, _FIXED, True)


def _untrack_models() -> None:
    from moto.core.common_models import BaseModel

    def untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    def subclasses(base: type) -> list[type]:
        return [sub for direct in base.__subclasses__() for sub in (direct, *subclasses(direct))]

    for model in subclasses(BaseModel):
        if model.__module__.startswith("moto.dynamodb."):
            model.__new__ = untracked_new  # type: ignore[method-assign, assignment]
            model.instances_tracked = []  # type: ignore[attr-defined]


def _query_one_partition() -> None:
    from moto.dynamodb.models.table import Table

    query, all_items = Table.query, Table.all_items
    asked = threading.local()  # (table, hash key) of the Query running on this thread

    @functools.wraps(query)
    def query_partition(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("index_name") or not table.range_key_attr:
            return query(table, hash_key, *args, **kwargs)
        asked.partition = (table, hash_key)
        try:
            return query(table, hash_key, *args, **kwargs)
        finally:
            asked.partition = None

    @functools.wraps(all_items)
    def items_of_the_partition(table: Any) -> Any:
        partition = getattr(asked, "partition", None)
        if partition is None or partition[0] is not table:
            return all_items(table)
        return list(table.items.get(partition[1], {}).values())  # Query sorts them itself

    Table.query = query_partition  # type: ignore[method-assign]
    Table.all_items = items_of_the_partition  # type: ignore[method-assign]


def _drop_empty_partitions() -> None:
    from moto.dynamodb.models.table import Table

    delete_item = Table.delete_item

    @functools.wraps(delete_item)
    def delete_and_drop(table: Any, hash_key: Any, range_key: Any) -> Any:
        item = delete_item(table, hash_key, range_key)
        if range_key and not table.items.get(hash_key, True):
            del table.items[hash_key]
        return item

    Table.delete_item = delete_and_drop  # type: ignore[method-assign]


class _NoTableCopies:
    """Stands in for the `copy` module inside moto.dynamodb.models: while a transaction runs on
    this thread, "copying" a table answers the table itself (the saved items undo instead)."""

    def __init__(self, table_class: type) -> None:
        self._table_class = table_class
        self.local = threading.local()

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if getattr(self.local, "in_transaction", False) and isinstance(value, self._table_class):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _roll_back_only_what_changed(models: Any, backend_class: Any) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    stand_in = _NoTableCopies(Table)
    models.copy = stand_in
    transact_write_items = backend_class.transact_write_items

    def touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
        """(table, hash key, range key, a copy of the item or None) for every item written."""
        saved = []
        for action in transact_items:
            for kind, operation in action.items():
                table = backend.tables.get(operation.get("TableName")) if isinstance(operation, dict) else None
                if kind == "ConditionCheck" or table is None:
                    continue
                key = operation.get("Item") if kind == "Put" else operation.get("Key")
                try:
                    hash_key = DynamoType(key[table.hash_key_attr])
                    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                    current = table.get_item(hash_key, range_key)
                except Exception:  # a malformed action: moto refuses it before writing anything
                    continue
                saved.append((table, hash_key, range_key, copy.deepcopy(current)))
        return saved

    def put_back(saved: list[tuple[Any, Any, Any, Any]]) -> None:
        for table, hash_key, range_key, item in reversed(saved):
            if range_key is None:
                if item is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = item
            elif item is None:
                partition = table.items.get(hash_key)
                if partition is not None:
                    partition.pop(range_key, None)
                    if not partition:
                        del table.items[hash_key]
            else:
                table.items[hash_key][range_key] = item

    @functools.wraps(transact_write_items)
    def all_or_nothing(backend: Any, transact_items: list[dict[str, Any]]) -> Any:
        saved = touched(backend, transact_items)
        stand_in.local.in_transaction = True
        try:
            return transact_write_items(backend, transact_items)
        except BaseException:
            put_back(saved)
            raise
        finally:
            stand_in.local.in_transaction = False

    backend_class.transact_write_items = all_or_nothing


def one_call_at_a_time() -> None:
    """Serialize the server's DynamoDB calls, so each is atomic, as DynamoDB makes it."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    call_action = DynamoHandler.call_action

    @functools.wraps(call_action)
    def atomic(self: Any) -> Any:
        with lock:
            return call_action(self)

    DynamoHandler.call_action = atomic  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """moto's server, with the fixes."""
    fix()
    one_call_at_a_time()
    from moto import server

    server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
