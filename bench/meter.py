"""Counting DynamoDB calls, items and capacity, whatever the store does inside.

`Meter` wraps a boto3 DynamoDB client (the same idea as tests/conftest.py's InterceptedClient,
written again here so the benchmark does not import from tests/). While a `Tally` is attached,
every API call is recorded: its name, its arguments and DynamoDB's answer. The cost is worked
out afterwards from those records alone, so the benchmark never relies on which keys, queries or
projections the store uses.

Item size (DynamoDB bills by it) is approximated as, for every attribute, the UTF-8 length of its
name plus the UTF-8 length of `json.dumps` of its plain value (`{"S": "ab"}` counts as `"ab"`,
4 bytes; a number as its JSON form; a map or list as its JSON text). Real DynamoDB counts a string
without the quotes and a map's keys plus its values' sizes plus a few bytes of overhead per
element, so this overestimates short strings by 2 bytes and is within a few percent for the
items here.

Capacity, for strongly consistent reads as the store makes them (eventually consistent: half):
- GetItem, BatchGetItem, TransactGetItems: ceil(size / 4 KB) RCU per item, at least 1 per key
  asked for even when absent (DynamoDB charges a read of an absent item too); TransactGetItems x2.
- Query, Scan: the sizes of all the items *scanned* in one call (before any FilterExpression,
  whatever the ProjectionExpression keeps), summed and rounded up to 4 KB, at least 1 RCU a call.
  Because a filtered or projected answer no longer holds the scanned items, the same request is
  sent again afterwards without its FilterExpression and ProjectionExpression, straight to the
  unwrapped client, to see and size what was scanned.
- Writes: ceil(max(size before, size after) / 1 KB) WCU per item, x2 inside TransactWriteItems.

Tables are taken to have the service's key (`pk`, `sk`) unless `KEY_NAMES` says otherwise for a
table name (bench/history.py's langchain table is keyed by `SessionId` alone). `watch` records
the calls of a client the Meter does not wrap, such as the one under a boto3 *resource*. Inside
`sizing(dynamodb_item_size)`, items are sized by DynamoDB's documented rules instead of the
approximation above (what bench/history.py does: for items of nested maps, such as langchain's,
the JSON text overcounts by several percent).
"""

from __future__ import annotations

import base64
import copy
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name

from chalicelib.store import schema

PK, SK = schema.PARTITION_KEY, schema.SORT_KEY
READ_UNIT, WRITE_UNIT = 4096, 1024
WRITE_OPS = {
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "transact_write_items",
    "execute_statement",
    "batch_execute_statement",
    "execute_transaction",
}
# Key attributes of tables that are not keyed like the service's table (pk, sk), by table name.
KEY_NAMES: dict[str, tuple[str, ...]] = {}
# Client attributes that are callables but not DynamoDB API calls.
_NOT_CALLS = {"get_waiter", "get_paginator", "can_paginate", "close", "generate_presigned_url"}


# --- sizes ----------------------------------------------------------------------------------------


def _plain(value: dict[str, Any]) -> Any:
    ((kind, inner),) = value.items()
    if kind == "S":
        return inner
    if kind == "N":
        return int(inner) if re.fullmatch(r"-?\d+", inner) else float(inner)
    if kind == "B":
        return base64.b64encode(bytes(inner)).decode()
    if kind in ("BOOL", "NULL"):
        return inner if kind == "BOOL" else None
    if kind == "SS":
        return list(inner)
    if kind == "NS":
        return [_plain({"N": n}) for n in inner]
    if kind == "BS":
        return [base64.b64encode(bytes(b)).decode() for b in inner]
    if kind == "L":
        return [_plain(v) for v in inner]
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """Approximate DynamoDB size of an item in wire form (see the module's docstring)."""
    if not item:
        return 0
    return sum(
        len(name.encode()) + len(json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":")).encode())
        for name, value in item.items()
    )


def _wire(value: dict[str, Any]) -> tuple[str, Any]:
    ((kind, inner),) = value.items()
    return kind, inner


def value_size(kind: str, inner: Any, child: Callable[[Any], tuple[str, Any]] = _wire) -> int:
    """Size of one attribute value by DynamoDB's documented rules: strings and binaries their
    bytes, numbers a byte per two significant digits plus one, booleans and nulls 1 byte, lists and
    maps 3 bytes plus 1 byte per element (maps: plus each key's bytes). `child` turns a nested
    value into (kind, inner); by default nested values are in wire form ({"S": "..."})."""
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = str(inner).lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(inner) if isinstance(inner, (bytes, bytearray)) else len(base64.b64decode(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(*child(v), child) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(*child(v), child) for k, v in inner.items())
    if kind in ("SS", "NS", "BS"):
        return sum(value_size(kind[0], v, child) for v in inner)
    raise ValueError(f"unknown attribute type {kind}")


def dynamodb_item_size(item: dict[str, Any] | None) -> int:
    """Size of an item in wire form by DynamoDB's rules: its attribute names plus their values."""
    return sum(len(name.encode()) + value_size(*_wire(v)) for name, v in (item or {}).items())


ITEM_SIZE: Callable[[dict[str, Any] | None], int] = item_size  # how recorded items are sized


def _sized(item: dict[str, Any] | None) -> int:
    return ITEM_SIZE(item)


@contextmanager
def sizing(function: Callable[[dict[str, Any] | None], int]) -> Iterator[None]:
    """Size items with `function` (e.g. dynamodb_item_size) while inside; item_size otherwise."""
    global ITEM_SIZE
    previous, ITEM_SIZE = ITEM_SIZE, function
    try:
        yield
    finally:
        ITEM_SIZE = previous


def _key_names(table: str | None) -> tuple[str, ...]:
    return KEY_NAMES.get(table, (PK, SK)) if table is not None else (PK, SK)


def _key_of(item: dict[str, Any], table: str | None = None) -> dict[str, Any]:
    return {name: item[name] for name in _key_names(table)}


def _key_id(table: str, key: dict[str, Any]) -> tuple[str, ...]:
    return (table, *(json.dumps(key[name], sort_keys=True) for name in _key_names(table)))


def camel(op: str) -> str:
    return "".join(part.capitalize() for part in op.split("_"))


# --- recording ------------------------------------------------------------------------------------


@dataclass
class Call:
    op: str
    kwargs: dict[str, Any]
    response: dict[str, Any]
    seconds: float
    # writes only: size of every touched item before and after the call
    before: dict[tuple[str, str, str], int] = field(default_factory=dict)
    after: dict[tuple[str, str, str], int] = field(default_factory=dict)


class Tally:
    """The calls made while attached to a Meter. `writes=True` also sizes every item a write
    touches, before and after it (with extra reads on the unwrapped client, not counted)."""

    def __init__(self, writes: bool = False) -> None:
        self.writes = writes
        self.calls: list[Call] = []

    def run(self, raw: Any, op: str, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        sent = copy.deepcopy(kwargs)
        touched = _written_keys(op, sent) if self.writes else []
        before = {_key_id(t, k): _sized(_get(raw, t, k)) for t, k in touched}
        started = time.perf_counter()
        response = function(**kwargs)
        seconds = time.perf_counter() - started
        after = {_key_id(t, k): _sized(_get(raw, t, k)) for t, k in touched}
        self.calls.append(Call(op, sent, response, seconds, before, after))
        return response

    def begin(self, raw: Any, op: str, kwargs: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
        """`run` in two halves, for calls made elsewhere (see `watch`): call this just before the
        call is sent, and what it returns with DynamoDB's answer once it has come back."""
        sent = copy.deepcopy(kwargs)
        touched = _written_keys(op, sent) if self.writes else []
        before = {_key_id(t, k): _sized(_get(raw, t, k)) for t, k in touched}
        started = time.perf_counter()

        def finish(response: dict[str, Any]) -> None:
            seconds = time.perf_counter() - started
            after = {_key_id(t, k): _sized(_get(raw, t, k)) for t, k in touched}
            self.calls.append(Call(op, sent, copy.deepcopy(response), seconds, before, after))

        return finish

    def counts(self) -> Counter:
        return Counter(camel(call.op) for call in self.calls)


class Meter:
    """A boto3 client whose API calls are recorded into `self.tally` while one is attached."""

    def __init__(self, client: Any, on_call: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self._client = client
        self.tally: Tally | None = None
        self._on_call = on_call

    @property
    def raw(self) -> Any:
        return self._client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name in ("exceptions", "meta") or name in _NOT_CALLS or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError("boto3 client calls take keyword arguments only")
            if self._on_call is not None:
                self._on_call(name, kwargs)
            tally = self.tally
            if tally is None:
                return attribute(**kwargs)
            return tally.run(self._client, name, attribute, kwargs)

        return call


def watch(meter: Meter, client: Any) -> None:
    """Record the DynamoDB calls of `client` into `meter.tally` (and through its `on_call`) as if
    they had gone through the Meter, sized with `meter.raw`. Meant for the client under a boto3
    resource (`boto3.resource("dynamodb").meta.client`): the resource turns Python values into
    DynamoDB's typed JSON, and back, in botocore event hooks *inside* each call, so wrapping that
    client would only see Python values. These hooks see the request after that translation
    (before-parameter-build, registered last) and DynamoDB's answer before it is translated back
    (after-call, registered first), i.e. exactly what goes over the wire. A call that fails is
    not recorded (the caller sees the error as usual)."""
    events, marker = client.meta.events, f"bench.meter.{id(meter)}"

    def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        op = xform_name(model.name)
        if meter._on_call is not None:
            meter._on_call(op, params)
        if meter.tally is not None:
            context[marker] = meter.tally.begin(meter.raw, op, params)

    def after(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        finish = context.pop(marker, None)
        if finish is not None and http_response.status_code < 300:
            finish(parsed)

    events.register_last("before-parameter-build.dynamodb", before, unique_id=f"{marker}.before")
    events.register_first("after-call.dynamodb", after, unique_id=f"{marker}.after")


def _get(raw: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    return raw.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")


def _written_keys(op: str, kwargs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    keys: list[tuple[str, dict[str, Any]]] = []
    if op == "transact_write_items":
        for action in kwargs.get("TransactItems", []):
            ((kind, body),) = action.items()
            if kind == "Put":
                keys.append((body["TableName"], _key_of(body["Item"], body["TableName"])))
            elif kind in ("Delete", "Update"):
                keys.append((body["TableName"], body["Key"]))
    elif op == "put_item":
        keys.append((kwargs["TableName"], _key_of(kwargs["Item"], kwargs["TableName"])))
    elif op in ("delete_item", "update_item"):
        keys.append((kwargs["TableName"], kwargs["Key"]))
    elif op == "batch_write_item":
        for table, requests in kwargs.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    keys.append((table, _key_of(request["PutRequest"]["Item"], table)))
                else:
                    keys.append((table, request["DeleteRequest"]["Key"]))
    return keys


# --- read cost --------------------------------------------------------------------------------------

_DROP = (
    "ProjectionExpression",
    "FilterExpression",
    "Select",
    "AttributesToGet",
    "QueryFilter",
    "ScanFilter",
    "ConditionalOperator",
    "ReturnConsumedCapacity",
)


def _stripped(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same Query/Scan without what only shapes the answer (filter, projection), keeping
    only the placeholders the remaining expressions still use (DynamoDB refuses unused ones)."""
    args = {k: v for k, v in kwargs.items() if k not in _DROP}
    text = args.get("KeyConditionExpression", "")
    names = {k: v for k, v in args.get("ExpressionAttributeNames", {}).items() if re.search(re.escape(k) + r"\b", text)}
    values = {
        k: v for k, v in args.get("ExpressionAttributeValues", {}).items() if re.search(re.escape(k) + r"\b", text)
    }
    for name, kept in (("ExpressionAttributeNames", names), ("ExpressionAttributeValues", values)):
        if kept:
            args[name] = kept
        else:
            args.pop(name, None)
    return args


def _units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


@dataclass
class ReadCost:
    calls: Counter
    items_read: int = 0
    rcu: float = 0.0
    warnings: list[str] = field(default_factory=list)
    bytes_read: int = 0  # the sizes of the items read; not in as_dict (bench/lists.py's record)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "calls_total": sum(self.calls.values()),
            "items_read": self.items_read,
            "rcu": self.rcu,
        }


def read_cost(raw: Any, calls: list[Call], memo: dict[str, tuple[int, list[int]]] | None = None) -> ReadCost:
    """Items read and RCU of recorded calls. The table must not have changed since they ran.
    `memo` keeps the sizes seen by re-sent (stripped) Query/Scan requests, so that the same
    unfiltered request is re-sent once for several measurements; clear it on any write."""
    memo = {} if memo is None else memo
    cost = ReadCost(Counter(camel(call.op) for call in calls))
    for call in calls:
        op, kwargs, answer = call.op, call.kwargs, call.response
        factor = 1.0 if kwargs.get("ConsistentRead") else 0.5
        if op in ("query", "scan"):
            scanned = answer.get("ScannedCount", answer.get("Count", 0))
            cost.items_read += scanned
            if any(k in kwargs for k in _DROP[:-1]):
                stripped = _stripped(kwargs)
                memo_key = json.dumps([op, stripped], sort_keys=True, default=str)
                if memo_key not in memo:
                    items = getattr(raw, op)(**stripped).get("Items", [])
                    memo[memo_key] = (len(items), [_sized(i) for i in items])
                count, sizes = memo[memo_key]
                if count != scanned:
                    cost.warnings.append(f"{camel(op)}: re-read {count} items, ScannedCount {scanned}")
            else:
                sizes = [_sized(i) for i in answer.get("Items", [])]
            cost.bytes_read += sum(sizes)
            cost.rcu += factor * _units(sum(sizes), READ_UNIT)
        elif op == "get_item":
            item = answer.get("Item")
            cost.items_read += 1 if item else 0
            if item is not None and "ProjectionExpression" in kwargs:
                item = _get(raw, kwargs["TableName"], kwargs["Key"])
            cost.bytes_read += _sized(item)
            cost.rcu += factor * _units(_sized(item), READ_UNIT)
        elif op == "batch_get_item":
            for table, request in kwargs.get("RequestItems", {}).items():
                factor = 1.0 if request.get("ConsistentRead") else 0.5
                found = answer.get("Responses", {}).get(table, [])
                cost.items_read += len(found)
                unprocessed = {
                    _key_id(table, k) for k in answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
                }
                for key in request["Keys"]:
                    if _key_id(table, key) in unprocessed:
                        continue
                    size = _sized(_get(raw, table, key))
                    cost.bytes_read += size
                    cost.rcu += factor * _units(size, READ_UNIT)
        elif op == "transact_get_items":
            for action, response in zip(kwargs.get("TransactItems", []), answer.get("Responses", [])):
                body = action["Get"]
                cost.items_read += 1 if response.get("Item") else 0
                size = _sized(_get(raw, body["TableName"], body["Key"]))
                cost.bytes_read += size if response.get("Item") else 0
                cost.rcu += 2 * _units(size, READ_UNIT)
        elif op in ("transact_write_items", "put_item", "delete_item", "update_item", "batch_write_item"):
            cost.warnings.append(f"a read path wrote: {camel(op)}")
        else:
            cost.warnings.append(f"not costed: {camel(op)}")
    return cost


# --- write cost -------------------------------------------------------------------------------------


@dataclass
class WriteCost:
    calls: Counter
    items_written: int = 0
    bytes_written: int = 0
    wcu: int = 0
    condition_checks: int = 0
    items_read: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "calls_total": sum(self.calls.values()),
            "items_written": self.items_written,
            "bytes_written": self.bytes_written,
            "wcu": self.wcu,
            "condition_checks": self.condition_checks,
            "items_read": self.items_read,
        }


def write_cost(calls: list[Call]) -> WriteCost:
    """Items and bytes written by recorded calls (a Tally with writes=True): a Put writes the item
    it carries, a Delete the item it removed (sized just before the call), an Update the item as
    it stands after. Condition checks are counted apart and are not in the WCU."""
    cost = WriteCost(Counter(camel(call.op) for call in calls))
    for call in calls:
        op, kwargs = call.op, call.kwargs
        writes: list[tuple[str, str, dict[str, Any]]] = []  # (kind, table, item or key)
        if op == "transact_write_items":
            for action in kwargs.get("TransactItems", []):
                ((kind, body),) = action.items()
                if kind == "ConditionCheck":
                    cost.condition_checks += 1
                else:
                    writes.append((kind, body["TableName"], body.get("Item") or body["Key"]))
        elif op == "put_item":
            writes.append(("Put", kwargs["TableName"], kwargs["Item"]))
        elif op in ("delete_item", "update_item"):
            writes.append(("Delete" if op == "delete_item" else "Update", kwargs["TableName"], kwargs["Key"]))
        elif op == "batch_write_item":
            for table, requests in kwargs.get("RequestItems", {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        writes.append(("Put", table, request["PutRequest"]["Item"]))
                    else:
                        writes.append(("Delete", table, request["DeleteRequest"]["Key"]))
        else:
            single = read_cost_items(call)
            cost.items_read += single
            continue
        factor = 2 if op == "transact_write_items" else 1
        for kind, table, item in writes:
            key = _key_id(table, _key_of(item, table))
            before, after = call.before.get(key, 0), call.after.get(key, 0)
            written = _sized(item) if kind == "Put" else before if kind == "Delete" else after
            cost.items_written += 1
            cost.bytes_written += written
            cost.wcu += factor * _units(max(before, after, written), WRITE_UNIT)
    return cost


def read_cost_items(call: Call) -> int:
    """Items read by one read call, as counted for lists (see read_cost)."""
    answer = call.response
    if call.op in ("query", "scan"):
        return answer.get("ScannedCount", answer.get("Count", 0))
    if call.op == "get_item":
        return 1 if answer.get("Item") else 0
    if call.op == "batch_get_item":
        return sum(len(items) for items in answer.get("Responses", {}).values())
    if call.op == "transact_get_items":
        return sum(1 for r in answer.get("Responses", []) if r.get("Item"))
    return 0


def count(dynamodb: Any, operation: str, args: dict[str, Any]) -> int:
    """How many items a Scan or Query with these arguments finds, page by page (`Select: COUNT`)."""
    args, total = {**args, "Select": "COUNT"}, 0
    while True:
        page = getattr(dynamodb, operation)(**args)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
