"""What HTTP carries besides the body, read into the typed values the rules take: list and
history queries from query strings, the versions an If-Match allows, the key of an Authorization
header; and a version written back as an ETag. Every value that cannot be read is a 400 naming
it (docs/api.md, "Query parameters")."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chalicelib.shared import clock, jsonio
from chalicelib.shared.errors import BadRequest

if TYPE_CHECKING:
    from chalicelib.rules.history import HistoryQuery
    from chalicelib.rules.kinds import Kind
    from chalicelib.rules.lists import ListQuery

OFFSET_MAX = 10**9  # a list's offset is read through: bounded, and the cursor is cheaper


# --- headers ----------------------------------------------------------------------------------------


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


# --- query strings -----------------------------------------------------------------------------------


def one_value_each(params: Any) -> dict[str, str]:
    """The query parameters (a multi-valued mapping: Chalice's), each given once: `limit=1&limit=2`
    is a 400, not the last one silently."""
    if not params:
        return {}
    repeated = sorted(name for name in params.keys() if len(params.getlist(name)) > 1)
    if repeated:
        raise BadRequest(f"query parameter {', '.join(repeated)} given more than once; give each once")
    return dict(params)


def int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    # ASCII digits only: int() would take "٣", a full-width "５" and "1_0" too.
    if not (raw.isascii() and raw.lstrip("-").isdigit()):
        raise BadRequest(f"{name} must be an integer from {low} to {high}, in ASCII digits; got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high}; got {value}")
    return value


def refuse_unknown(params: dict[str, str], known: set[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        accepted = f"accepted: {', '.join(sorted(known))}" if known else "this route takes no query parameters"
        raise BadRequest(f"unknown query parameter {', '.join(unknown)}; {accepted}")


def no_query(params: dict[str, str]) -> None:
    refuse_unknown(params, set())


def _order(params: dict[str, str], default: str) -> bool:
    """Whether the order asked for is descending."""
    order = params.get("order", default)
    if order not in ("asc", "desc"):
        raise BadRequest(f"order must be asc or desc; got {order!r}")
    return order == "desc"


def list_query(kind: Kind, developer: str, params: dict[str, str]) -> ListQuery:
    from chalicelib.rules import cursor
    from chalicelib.rules.lists import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, ListQuery
    from chalicelib.store import index

    lifecycle = {"status"} if kind.name == "session" else set()
    refuse_unknown(
        params, {"limit", "offset", "metadata_filter", "sort_by", "order", "cursor", *kind.references, *lifecycle}
    )
    status = params.get("status")
    if status is not None and status not in ("active", "ended"):
        raise BadRequest("status must be active or ended")
    sort_by = params.get("sort_by", "created_at")
    if sort_by not in ("created_at", "updated_at"):
        raise BadRequest("sort_by must be created_at or updated_at")
    descending = _order(params, "desc")
    parents = []
    for name in kind.references:
        if params.get(name) is not None:
            if not clock.is_uuid(params[name]):
                raise BadRequest(f"{name} must be a UUID")
            parents.append((name.removesuffix("_id"), clock.canonical_id(params[name])))
    query = ListQuery(
        limit=int_param(params, "limit", LIST_LIMIT_DEFAULT, 1, LIST_LIMIT_MAX),
        offset=int_param(params, "offset", 0, 0, OFFSET_MAX),
        metadata_filter=metadata_filter(params.get("metadata_filter")),
        parents=tuple(parents),
        status=status,
        sort_by=sort_by,
        descending=descending,
    )
    indexable = len(index.metadata_terms(query.metadata_filter))
    if indexable > index.MAX_INDEXED_VALUES:
        raise BadRequest(
            f"metadata_filter has {indexable} conditions on top-level strings, numbers or booleans; "
            f"a record holds at most {index.MAX_INDEXED_VALUES} such values, so none could match"
        )
    if params.get("cursor"):
        if query.offset:
            raise BadRequest("give cursor or offset, not both: a cursor already says where to continue")
        query = replace(query, after=cursor.decode(params["cursor"], developer, query.digest(kind)))
    return query


def history_query(developer: str, session_id: str, params: dict[str, str]) -> HistoryQuery:
    from chalicelib.rules import cursor
    from chalicelib.rules.history import OFFSET_MAX as HISTORY_OFFSET_MAX
    from chalicelib.rules.history import PAGE_DEFAULT, PAGE_MAX, HistoryQuery, cursor_digest

    refuse_unknown(params, {"limit", "offset", "cursor", "order"})
    limit = int_param(params, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
    offset = int_param(params, "offset", 0, 0, HISTORY_OFFSET_MAX)
    descending = _order(params, "asc")
    after = None
    if "cursor" in params:
        if offset:
            raise BadRequest("pass either cursor or offset, not both")
        after = cursor.decode(params["cursor"], developer, cursor_digest(session_id, descending))
    return HistoryQuery(limit=limit, offset=offset, descending=descending, after=after)


def rewind_query(params: dict[str, str]) -> str | None:
    """`after` of DELETE /sessions/{id}/history: the message to rewind to, or None to clear all."""
    refuse_unknown(params, {"after"})
    after = params.get("after")
    if after is not None and not clock.is_uuid(after):
        raise BadRequest(f"after must be a message id (a UUID); got {after!r}")
    return clock.canonical_id(after) if after is not None else None


def metadata_filter(text: str | None) -> dict[str, Any]:
    """`metadata_filter` as a JSON object held to the rules of metadata (keys, sizes, nesting,
    numbers DynamoDB can store): what no metadata may hold, no filter may ask for, and a number no
    stored value can equal (1e400) is a 400 here rather than a filter that silently matches nothing."""
    if text is None or text == "":
        return {}
    value = jsonio.loads(text, what="metadata_filter")
    if not isinstance(value, dict):
        raise BadRequest('metadata_filter must be a JSON object, such as {"db_uuid": "1234"}')
    from pydantic import ValidationError

    from chalicelib.rules import models
    from chalicelib.rules.validation import field_errors

    try:
        # Compared, never written: an integer counts its significant digits, as stored numbers do
        # (10**40 written out matches a stored 1E+40, where a body could not write it so).
        return models.MetadataFilter.model_validate({"metadata_filter": _as_decimals(value)}).metadata_filter
    except ValidationError as exc:
        details = field_errors(exc)
        raise BadRequest(
            f"metadata_filter cannot match any metadata: {details[0]['message']}", details=details
        ) from None


def _as_decimals(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, dict):
        return {key: _as_decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_decimals(item) for item in value]
    return value
