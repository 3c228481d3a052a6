"""What HTTP carries besides the body and the query's values: the versions an If-Match allows,
the key of an Authorization header, a version written back as an ETag, and the query string as
one value per parameter (its values are read by the operation's query model, rules/parameters.py)."""

from __future__ import annotations

from typing import Any

from chalicelib.shared.errors import BadRequest


def etag(version: int) -> str:
    return f'"{version}"'


def expected_versions(if_match: str | None) -> frozenset[int] | None:
    """The versions `If-Match` (RFC 9110) allows: None for any (no header, or `*`), else those of
    its ETags (weak ones compare by their value). One that names no version allows none."""
    if if_match is None or if_match.strip() == "*":
        return None
    versions = set()
    for tag in if_match.split(","):
        value = tag.strip().removeprefix("W/")
        digits = value[1:-1] if len(value) >= 3 and value[0] == value[-1] == '"' else ""
        if digits.isascii() and digits.isdigit() and etag(int(digits)) == value:
            versions.add(int(digits))
    return frozenset(versions)


def bearer_key(authorization: str | None) -> str | None:
    """The key of `Authorization: Bearer <key>`; None when there is none."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def one_value_each(params: Any) -> dict[str, str]:
    """The query parameters (a multi-valued mapping: Chalice's), each given once: `limit=1&limit=2`
    is a 400, not the last one silently."""
    if not params:
        return {}
    repeated = sorted(name for name in params.keys() if len(params.getlist(name)) > 1)
    if repeated:
        raise BadRequest(f"query parameter {', '.join(repeated)} given more than once; give each once")
    return dict(params)
