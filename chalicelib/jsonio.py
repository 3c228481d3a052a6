"""JSON in and out, exactly: numbers stay Decimal (DynamoDB's number type), NaN and Infinity are
refused, and text that cannot be UTF-8 (lone surrogates) never reaches the table."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from .errors import BadRequest, PayloadTooLarge

MAX_BODY_BYTES = 1024 * 1024


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes, what: str = "request body") -> Any:
    """Parse JSON, raising BadRequest with the parser's reason."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"{what} is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} contains a lone surrogate, which is not valid Unicode") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply") from None
    return value


def loads_body(raw: bytes | None) -> dict[str, Any]:
    """A request body must be one JSON object."""
    if raw is not None and len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is over the limit of {MAX_BODY_BYTES} bytes")
    if not raw:
        raise BadRequest("request body is empty; a JSON object is required")
    value = loads(raw)
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):  # a wire model (pydantic), wherever it sits in the answer
        return value.model_dump()
    if isinstance(value, Decimal):
        # Integers stay integers; anything written with a fraction or exponent goes out as a float.
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"))
