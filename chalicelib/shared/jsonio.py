"""JSON in and out, exactly: numbers come in as Decimal (DynamoDB's number type) and go out as
their exact decimal text, never through a float; NaN and Infinity are refused, and text that
cannot be UTF-8 (lone surrogates) never reaches the table (docs/reliability.md, "Numbers")."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

from chalicelib.shared.errors import BadRequest, PayloadTooLarge

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


def loads_body(raw: bytes | None, optional: bool = False) -> dict[str, Any]:
    """A request body must be one JSON object; `optional`: none at all (zero bytes) means `{}`, for
    operations whose every field is optional."""
    if raw is not None and len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is over the limit of {MAX_BODY_BYTES} bytes")
    if not raw:
        if optional:
            return {}
        raise BadRequest("request body is empty; a JSON object is required")
    value = loads(raw)
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value


def number_text(value: Decimal) -> str:
    """A Decimal as a JSON number, its value and digits exactly: `str` keeps every digit of the
    coefficient (`0.1`, `1E+40`, `1.5E-7`, `2.50`, `-0`, `0E-7`), and every finite form it gives
    is valid JSON (tests/test_limits.py checks that property)."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON with every Decimal written as its exact decimal text.

    The C encoder writes numbers only through int's and float's own repr (even for subclasses),
    and a float keeps 17 digits at best; so each Decimal goes in as a placeholder string (a
    random token drawn once per call, at the first Decimal) and comes out replaced by its text,
    in the order the encoder met them. Pydantic models anywhere in the value are dumped where
    they are met. A value without Decimals costs nothing more than json.dumps.
    """
    while True:
        numbers: list[str] = []
        token = ""

        def default(item: Any) -> Any:
            nonlocal token
            if isinstance(item, Decimal):
                if not token:
                    token = "decimal:" + secrets.token_hex(16)
                numbers.append(number_text(item))
                return token
            if hasattr(item, "model_dump"):  # a wire model (pydantic), wherever it sits in the answer
                return item.model_dump()
            raise TypeError(f"{type(item).__name__} is not JSON serializable")

        text = json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":"))
        if not numbers:
            return text
        pieces = text.split(f'"{token}"')
        # A string equal to the token could only be there by a 2**-128 chance; draw again then.
        if len(pieces) == len(numbers) + 1:
            return "".join(piece + number for piece, number in zip(pieces, numbers)) + pieces[-1]
