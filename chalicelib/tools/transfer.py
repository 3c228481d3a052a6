"""The export format of one developer's data, and reading it back exactly (docs/operations.md).

A file is JSON Lines in UTF-8. The first line is a header:

    {"format": "sessions-export", "version": 1, "developer": "alice", "table": "sessions",
     "exported_at": "2025-01-01T00:00:00.000000Z", "items": 1234}

and each further line is one DynamoDB item in DynamoDB's typed JSON, `{"pk": {"S": "dev#alice#..."},
"sk": {"S": "#record"}, "version": {"N": "3"}, ...}`: numbers stay the exact text DynamoDB keeps,
sets stay sets and binary values are base64 (as in DynamoDB's own JSON). Lines are sorted by
(pk, sk) and attribute names within a line, so two exports of the same data are the same bytes
(but for `exported_at`) and can be diffed.

Reading checks everything before anything is written: the header, every value's type tags, that
each item is the developer's (a `dev#<d>#` key, or an `apikey#` record whose developer_id is the
developer), no key twice, and the header's item count (a truncated file is refused).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from typing import Any

from chalicelib.store import keys
from chalicelib.store.codec import key_of
from chalicelib.store.schema import PARTITION_KEY as PK
from chalicelib.store.schema import SORT_KEY as SK

FORMAT = "sessions-export"
VERSION = 1

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_API_KEY_PK = re.compile(rf"^{keys.API_KEY_PREFIX}[0-9a-f]{{64}}$")


class BadFile(ValueError):
    """The file cannot be imported as it is; the message names the line and the reason."""


def header(developer: str, table: str, exported_at: str, items: int) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "developer": developer,
            "table": table,
            "exported_at": exported_at,
            "items": items,
        },
        ensure_ascii=False,
    )


def item_line(item: dict[str, Any]) -> str:
    """One item as a line (without the newline): typed JSON, names sorted, binary as base64, text
    as UTF-8 except the characters some readers take for line ends (str.splitlines does)."""
    line = json.dumps(
        {name: _to_json(value) for name, value in item.items()},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return line.translate(_LINE_BREAKS)


# json.dumps escapes the C0 controls; these three it leaves as they are (only strings hold them).
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def owner_problem(item: dict[str, Any], developer: str) -> str | None:
    """Why this item is not the developer's, or None when it is."""
    pk, sk = key_of(item)
    found = keys.parse(pk, sk)
    if found.developer == developer:
        return None
    if found.what == "api_key":
        if not _API_KEY_PK.match(pk) or sk != keys.RECORD:
            return f"{pk!r} is not an API key record (apikey#<sha256>, sk #record)"
        owner = item.get("developer_id")
        if owner != {"S": developer}:
            return f"API key record {pk[:19]}... belongs to developer {_text(owner)!r}, not {developer!r}"
        return None
    return f"pk {pk!r} is not developer {developer!r}'s (not under {keys.developer_prefix(developer)})"


def read(lines: Iterable[bytes], developer: str) -> list[tuple[int, dict[str, Any]]]:
    """Every item of an export file as (line number, item ready for botocore), checked whole.
    Raises BadFile naming the first line that is wrong."""
    items: list[tuple[int, dict[str, Any]]] = []
    seen: dict[tuple[str, str], int] = {}
    expected: int | None = None
    for number, raw in enumerate(lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadFile(f"line {number}: not UTF-8") from None
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BadFile(f"line {number}: not JSON ({exc})") from None
        if expected is None:
            expected = _check_header(value, developer, number)
            continue
        try:
            item = _item(value)
        except ValueError as exc:
            raise BadFile(f"line {number}: {exc}") from None
        problem = owner_problem(item, developer)
        if problem:
            raise BadFile(f"line {number}: {problem}")
        key = key_of(item)
        if key in seen:
            raise BadFile(f"line {number}: the same key as line {seen[key]} ({key[0]}, {key[1]})")
        seen[key] = number
        items.append((number, item))
    if expected is None:
        raise BadFile("the file is empty: no header line")
    if expected != len(items):
        raise BadFile(f"the header says {expected} items but the file has {len(items)} (truncated?)")
    return items


def _check_header(value: Any, developer: str, number: int) -> int:
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise BadFile(f"line {number}: not a {FORMAT} header (is this an export of sessions-admin?)")
    if value.get("version") != VERSION:
        raise BadFile(f"line {number}: format version {value.get('version')!r}; this tool reads version {VERSION}")
    if value.get("developer") != developer:
        raise BadFile(f"line {number}: the file is developer {value.get('developer')!r}'s export, not {developer!r}'s")
    count = value.get("items")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise BadFile(f"line {number}: the header's item count {count!r} is not a count")
    return count


def _item(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("not a JSON object of attributes")
    item = {_utf8(name, "attribute name"): _from_json(typed, name) for name, typed in value.items()}
    for name in (PK, SK):
        if not isinstance(item.get(name), dict) or "S" not in item[name]:
            raise ValueError(f"no string key attribute {name!r}")
    return item


def _to_json(value: dict[str, Any]) -> dict[str, Any]:
    ((tag, inner),) = value.items()
    if tag == "B":
        return {"B": base64.b64encode(inner).decode("ascii")}
    if tag == "BS":
        return {"BS": [base64.b64encode(b).decode("ascii") for b in inner]}
    if tag == "M":
        return {"M": {k: _to_json(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [_to_json(v) for v in inner]}
    return value


def _from_json(value: Any, where: str) -> dict[str, Any]:
    """A typed value as botocore takes it (binary as bytes), checked so DynamoDB will not refuse it
    halfway through an import for its shape."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f'{where}: not a typed value like {{"S": ...}}')
    ((tag, inner),) = value.items()
    if tag == "S":
        return {"S": _utf8(inner, where)}
    if tag == "N":
        return {"N": _number(inner, where)}
    if tag == "B":
        return {"B": _binary(inner, where)}
    if tag == "BOOL" and isinstance(inner, bool):
        return value
    if tag == "NULL" and inner is True:
        return value
    if tag in ("SS", "NS", "BS"):
        if not isinstance(inner, list) or not inner:
            raise ValueError(f"{where}: a {tag} must be a non-empty list")
        convert = {"SS": _utf8, "NS": _number, "BS": _binary}[tag]
        return {tag: [convert(member, where) for member in inner]}
    if tag == "M" and isinstance(inner, dict):
        return {"M": {_utf8(k, where): _from_json(v, f"{where}.{k}") for k, v in inner.items()}}
    if tag == "L" and isinstance(inner, list):
        return {"L": [_from_json(v, f"{where}[{i}]") for i, v in enumerate(inner)]}
    raise ValueError(f"{where}: {tag!r} with {type(inner).__name__} is not a DynamoDB value")


def _utf8(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: {value!r} is not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: a lone surrogate is not valid Unicode") from None
    return value


def _number(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NUMBER.match(value):
        raise ValueError(f"{where}: {value!r} is not a number's text")
    return value


def _binary(value: Any, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not base64") from None


def _text(value: Any) -> Any:
    return value.get("S") if isinstance(value, dict) else value
