"""`metadata_filter`: a JSON object whose every top-level key must equal the record's value
(rules/parameters.py reads it from the query string).

Equality is typed, as JSON means it: `1`, `"1"` and `true` all differ (Python's `1 == True`
does not leak in); numbers compare by value (`1` equals `1.0`); nested objects and arrays
equal as a whole; `{}` matches everything.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


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
