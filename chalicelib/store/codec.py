"""Values as DynamoDB types them and back: records are plain dicts above the store, typed
attribute values (`{"S": ...}`, `{"N": ...}`) only in here."""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from .schema import PARTITION_KEY as PK
from .schema import SORT_KEY as SK


class _ExactDeserializer(TypeDeserializer):
    """Numbers as the exact Decimal of DynamoDB's text. boto3's own rounds through a 38-digit
    context that traps rounding, so a number DynamoDB hands back spelled out in full (1E+40 as
    forty-one digits) would raise (boto/boto3#2500)."""

    def _deserialize_n(self, value: str) -> Decimal:
        return Decimal(value)

    def _deserialize_ns(self, value: list[str]) -> set[Decimal]:
        return {Decimal(v) for v in value}


_serializer = TypeSerializer()
_deserializer = _ExactDeserializer()


def key(pk: str, sk: str) -> dict[str, Any]:
    """A typed key."""
    return {PK: {"S": pk}, SK: {"S": sk}}


def key_of(item: dict[str, Any]) -> tuple[str, str]:
    """(pk, sk) of a typed item or key."""
    return item[PK]["S"], item[SK]["S"]


def only_key(item: dict[str, Any]) -> dict[str, Any]:
    """The typed key of a typed item."""
    return {PK: item[PK], SK: item[SK]}


def value(plain: Any) -> dict[str, Any]:
    """One plain value, typed."""
    return _serializer.serialize(plain)


def serialize(values: dict[str, Any]) -> dict[str, Any]:
    # None means "absent": omitting it keeps items small and reads default it back to None.
    return {k: _serializer.serialize(_storable(v)) for k, v in values.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    """A typed item's attributes, its key aside, as plain values."""
    return {k: _deserializer.deserialize(v) for k, v in item.items() if k not in (PK, SK)}


def _storable(value: Any) -> Any:
    """DynamoDB hands numbers back spelled out (1E+40 as forty-one digits), which boto3 then
    refuses to write; such a number is written again in its shortest exact form."""
    if isinstance(value, Decimal):
        digits = len(value.as_tuple().digits)
        return value.normalize(Context(prec=digits)) if digits > 38 else value  # exact: only zeros go
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value
