"""`metadata_filter`: a JSON object whose every top-level key must equal the record's value.

Equality is typed, as JSON means it: `1`, `"1"` and `true` all differ (Python's `1 == True`
does not leak in); numbers compare by value (`1` equals `1.0`); nested objects and arrays
equal as a whole; `{}` matches everything.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from chalicelib.shared import jsonio
from chalicelib.shared.errors import BadRequest


def parse_metadata_filter(text: str | None) -> dict[str, Any]:
    """The filter as a JSON object held to the rules of metadata (keys, sizes, nesting, numbers
    DynamoDB can store): what no metadata may hold, no filter may ask for, and a number no stored
    value can equal (1e400) is a 400 here rather than a filter that silently matches nothing."""
    if text is None or text == "":
        return {}
    value = jsonio.loads(text, what="metadata_filter")
    if not isinstance(value, dict):
        raise BadRequest("metadata_filter must be a JSON object, such as {\"db_uuid\": \"1234\"}")
    from pydantic import ValidationError

    from chalicelib.rules import models
    try:
        # Compared, never written: an integer counts its significant digits, as stored numbers do
        # (10**40 written out matches a stored 1E+40, where a body could not write it so).
        return models.MetadataFilter.model_validate({"metadata_filter": _as_decimals(value)}).metadata_filter
    except ValidationError as exc:
        details = [{"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"],
                    "type": error["type"]}
                   for error in exc.errors(include_url=False, include_context=False, include_input=False)]
        raise BadRequest(f"metadata_filter cannot match any metadata: {details[0]['message']}", details=details) from None


def _as_decimals(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, dict):
        return {key: _as_decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_decimals(item) for item in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def typed_equal(left: Any, right: Any) -> bool:
    if _is_number(left) or _is_number(right):
        return _is_number(left) and _is_number(right) and Decimal(str(left)) == Decimal(str(right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(typed_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(typed_equal(a, b) for a, b in zip(left, right))
    return type(left) is type(right) and left == right


def matches(metadata: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(key in metadata and typed_equal(metadata[key], value) for key, value in wanted.items())
