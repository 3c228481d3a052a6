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
"""
from __future__ import annotations

import base64
import copy
import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from chalicelib import schema

PK, SK = schema.PARTITION_KEY, schema.SORT_KEY
READ_UNIT, WRITE_UNIT = 4096, 1024
WRITE_OPS = {"put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items",
             "execute_statement", "batch_execute_statement", "execute_transaction"}
# Client attributes that are callables but not DynamoDB API calls.
_NOT_CALLS = {"get_waiter", "get_paginator", "can_paginate", "close", "generate_presigned_url"}


# --- sizes ----------------------------------------------------------------------------------------

def _plain(value: dict[str, Any]) -> Any:
    (kind, inner), = value.items()
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
    return sum(len(name.encode()) + len(json.dumps(_plain(value), ensure_ascii=False,
                                                   separators=(",", ":")).encode())
               for name, value in item.items())


def _key_of(item: dict[str, Any]) -> dict[str, Any]:
    return {PK: item[PK], SK: item[SK]}


def _key_id(table: str, key: dict[str, Any]) -> tuple[str, str, str]:
    return table, json.dumps(key[PK], sort_keys=True), json.dumps(key[SK], sort_keys=True)


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
        before = {_key_id(t, k): item_size(_get(raw, t, k)) for t, k in touched}
        started = time.perf_counter()
        response = function(**kwargs)
        seconds = time.perf_counter() - started
        after = {_key_id(t, k): item_size(_get(raw, t, k)) for t, k in touched}
        self.calls.append(Call(op, sent, response, seconds, before, after))
        return response

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


def _get(raw: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    return raw.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")


def _written_keys(op: str, kwargs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    keys: list[tuple[str, dict[str, Any]]] = []
    if op == "transact_write_items":
        for action in kwargs.get("TransactItems", []):
            (kind, body), = action.items()
            if kind == "Put":
                keys.append((body["TableName"], _key_of(body["Item"])))
            elif kind in ("Delete", "Update"):
                keys.append((body["TableName"], body["Key"]))
    elif op == "put_item":
        keys.append((kwargs["TableName"], _key_of(kwargs["Item"])))
    elif op in ("delete_item", "update_item"):
        keys.append((kwargs["TableName"], kwargs["Key"]))
    elif op == "batch_write_item":
        for table, requests in kwargs.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    keys.append((table, _key_of(request["PutRequest"]["Item"])))
                else:
                    keys.append((table, request["DeleteRequest"]["Key"]))
    return keys


# --- read cost --------------------------------------------------------------------------------------

_DROP = ("ProjectionExpression", "FilterExpression", "Select", "AttributesToGet", "QueryFilter",
         "ScanFilter", "ConditionalOperator", "ReturnConsumedCapacity")


def _stripped(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same Query/Scan without what only shapes the answer (filter, projection), keeping
    only the placeholders the remaining expressions still use (DynamoDB refuses unused ones)."""
    args = {k: v for k, v in kwargs.items() if k not in _DROP}
    text = args.get("KeyConditionExpression", "")
    names = {k: v for k, v in args.get("ExpressionAttributeNames", {}).items()
             if re.search(re.escape(k) + r"\b", text)}
    values = {k: v for k, v in args.get("ExpressionAttributeValues", {}).items()
              if re.search(re.escape(k) + r"\b", text)}
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

    def as_dict(self) -> dict[str, Any]:
        return {"calls": dict(self.calls), "calls_total": sum(self.calls.values()),
                "items_read": self.items_read, "rcu": self.rcu}


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
                    memo[memo_key] = (len(items), [item_size(i) for i in items])
                count, sizes = memo[memo_key]
                if count != scanned:
                    cost.warnings.append(f"{camel(op)}: re-read {count} items, ScannedCount {scanned}")
            else:
                sizes = [item_size(i) for i in answer.get("Items", [])]
            cost.rcu += factor * _units(sum(sizes), READ_UNIT)
        elif op == "get_item":
            item = answer.get("Item")
            cost.items_read += 1 if item else 0
            if item is not None and "ProjectionExpression" in kwargs:
                item = _get(raw, kwargs["TableName"], kwargs["Key"])
            cost.rcu += factor * _units(item_size(item), READ_UNIT)
        elif op == "batch_get_item":
            for table, request in kwargs.get("RequestItems", {}).items():
                factor = 1.0 if request.get("ConsistentRead") else 0.5
                found = answer.get("Responses", {}).get(table, [])
                cost.items_read += len(found)
                unprocessed = {_key_id(table, k) for k in
                               answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])}
                for key in request["Keys"]:
                    if _key_id(table, key) in unprocessed:
                        continue
                    cost.rcu += factor * _units(item_size(_get(raw, table, key)), READ_UNIT)
        elif op == "transact_get_items":
            for action, response in zip(kwargs.get("TransactItems", []), answer.get("Responses", [])):
                body = action["Get"]
                cost.items_read += 1 if response.get("Item") else 0
                cost.rcu += 2 * _units(item_size(_get(raw, body["TableName"], body["Key"])), READ_UNIT)
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
        return {"calls": dict(self.calls), "calls_total": sum(self.calls.values()),
                "items_written": self.items_written, "bytes_written": self.bytes_written,
                "wcu": self.wcu, "condition_checks": self.condition_checks, "items_read": self.items_read}


def write_cost(calls: list[Call]) -> WriteCost:
    """Items and bytes written by recorded calls (a Tally with writes=True): a Put writes the item
    it carries, a Delete the item it removed (sized just before the call), an Update the item as
    it stands after. Condition checks are counted apart and are not in the WCU."""
    cost = WriteCost(Counter(camel(call.op) for call in calls))
    for call in calls:
        op, kwargs = call.op, call.kwargs
        writes: list[tuple[str, str, dict[str, Any]]] = []   # (kind, table, item or key)
        if op == "transact_write_items":
            for action in kwargs.get("TransactItems", []):
                (kind, body), = action.items()
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
            key = _key_id(table, _key_of(item))
            before, after = call.before.get(key, 0), call.after.get(key, 0)
            written = item_size(item) if kind == "Put" else before if kind == "Delete" else after
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
