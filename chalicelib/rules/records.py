"""Agents, users and sessions: create, read and update, each record with its index entries in one
transaction (store/records.py). Deleting, which cascades, is deletes.py's."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from chalicelib.rules import models, validation
from chalicelib.rules.conflicts import retry_on_conflict
from chalicelib.rules.idempotency import Receipt
from chalicelib.rules.kinds import Kind
from chalicelib.shared import clock
from chalicelib.shared.errors import NotFound, PreconditionFailed, Unavailable
from chalicelib.store import EXPIRES, MissingRecord, Record, Store, VersionConflict


@dataclass(frozen=True)
class Versioned:
    """An answer and the version of the record it read or wrote (which the edge answers as the
    ETag, and takes back as If-Match)."""

    answer: BaseModel
    version: int


def wire(kind: Kind, record: Record) -> BaseModel:
    return kind.wire_model.model_validate(record)


def existing(store: Store, kind: Kind, developer: str, record_id: str) -> Record:
    """The record, or NotFound: absent, or expired (gone from its expiry's second on, whenever
    DynamoDB's TTL gets to remove it)."""
    record = live(store.get(developer, kind.name, record_id)) if clock.is_uuid(record_id) else None
    if record is None:
        raise NotFound(f"{kind.name} {record_id} not found")
    return record


def live(record: Record | None) -> Record | None:
    """The record unless it is absent or expired."""
    return None if record is None or clock.expired(record.get(EXPIRES)) else record


def expiry_of(ttl: int | None) -> int | None:
    """The expiry (epoch seconds) of a record given `ttl` seconds now; None for none."""
    return None if ttl is None else int(clock.epoch_seconds()) + ttl


def default_ttl(kind: Kind, developer: str) -> int | None:
    """The configured retention of new sessions (SESSIONS_DEFAULT_TTL); none for agents and users.
    A bad setting is the operator's to fix: Unavailable says so (make run refuses it at start)."""
    if kind.name != "session":
        return None
    try:
        defaults = parse_default_ttl(os.environ.get("SESSIONS_DEFAULT_TTL", ""))
    except ValueError as error:
        raise Unavailable(f"new sessions cannot be created: {error}") from None
    return defaults.get(developer, defaults.get("*"))


def parse_default_ttl(raw: str) -> dict[str, int]:
    """SESSIONS_DEFAULT_TTL as {developer: seconds}, "*" for everyone else: a number of seconds
    for every developer, or a JSON object of them by developer id. Empty: no default."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    spec = value if isinstance(value, dict) else {"*": value}
    limit = models.MAX_TTL_SECONDS
    if not spec or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= limit for s in spec.values()):
        raise ValueError(
            f"SESSIONS_DEFAULT_TTL must be seconds from 1 to {limit}, or a JSON object of them by "
            f'developer id ("*" for the rest); got {raw!r}'
        )
    return spec


def check_expected(kind: Kind, record: Record, expected: frozenset[int] | None) -> None:
    """`expected`: the versions the caller's If-Match allows (None: any). Another one is a 412
    and changes nothing."""
    if expected is not None and record["version"] not in expected:
        raise PreconditionFailed(f"{kind.name} {record['id']} has changed", record["version"])


def create(store: Store, kind: Kind, developer: str, body: BaseModel, receipt: Receipt | None = None) -> models.Created:
    """`body`: an instance of the kind's create model."""
    data = validation.given_fields(body)
    for name in kind.unsupported:
        data.pop(name, None)
    for name in kind.references:
        validation.require_uuid(name, data.get(name))
        if data.get(name) is not None:
            data[name] = clock.canonical_id(data[name])
    validation.check_indexable(data.get("metadata", {}))
    validation.check_default_settings(data)
    validation.check_templates(kind.name, data, set(data))
    ttl = data.pop("ttl", None) or default_ttl(kind, developer)
    timestamp = clock.now()
    record = {
        **kind.defaults,
        **data,
        "id": clock.new_id(),
        "created_at": timestamp,
        "updated_at": timestamp,
        "version": 1,
        EXPIRES: expiry_of(ttl),
    }
    answer = models.Created(id=record["id"], created_at=timestamp)
    try:
        store.create(
            developer,
            kind.name,
            record,
            kind.parents(record),
            kind.terms(record),
            receipt and receipt.record(201, answer),
        )
    except MissingRecord as missing:
        raise NotFound(
            f"{missing.kind} {missing.record_id} not found",
            details=[
                {"field": f"{missing.kind}_id", "message": f"no {missing.kind} with this id", "type": "not_found"}
            ],
        ) from None
    return answer


def get(store: Store, kind: Kind, developer: str, record_id: str) -> Versioned:
    record = existing(store, kind, developer, record_id)
    return Versioned(wire(kind, record), record["version"])


def update(
    store: Store,
    kind: Kind,
    developer: str,
    record_id: str,
    body: BaseModel,
    replace: bool,
    expected: frozenset[int] | None = None,
) -> Versioned:
    """PATCH (replace=False) writes the non-null fields given and merges metadata key by key,
    a key set to null removing it; PUT (replace=True) requires the model's required fields and
    replaces metadata whole. Read, change, write conditionally on the version: a concurrent
    change is retried on the fresh record, so none is lost. With `expected` versions (If-Match),
    the write happens only on one of them: no retry, a 412 if it moved on. An update that would
    change nothing writes nothing and answers the current version (docs/api.md). `body`: an
    instance of the kind's replace or patch model."""
    changes = validation.given_fields(body)
    if "ttl" in body.model_fields_set:  # a new retention from now on; null: none (null is given here)
        changes.pop("ttl", None)
        changes[EXPIRES] = expiry_of(body.ttl)
    if "metadata" in changes and replace:
        validation.check_indexable(changes["metadata"])
    validation.check_default_settings(changes)

    def attempt(_: VersionConflict | None) -> Versioned:
        old = existing(store, kind, developer, record_id)
        check_expected(kind, old, expected)
        new = {**old, **changes}
        if "metadata" in changes and not replace:
            new["metadata"] = merged_metadata(kind, old.get("metadata", {}), changes["metadata"])
        if _same(old, new):  # nothing to change: no write, no new version, no move in lists
            return Versioned(models.Updated(id=record_id, updated_at=old["updated_at"]), old["version"])
        validation.check_templates(kind.name, new, set(changes))
        new["updated_at"] = clock.after(old["updated_at"])
        new["version"] = old["version"] + 1
        try:
            store.replace(developer, kind.name, old, new, kind.terms(old), kind.terms(new))
        except MissingRecord:
            raise NotFound(f"{kind.name} {record_id} not found") from None
        return Versioned(models.Updated(id=record_id, updated_at=new["updated_at"]), new["version"])

    return retry_on_conflict(attempt, f"{kind.name} {record_id} kept changing under this update; retry it")


def _same(old: Record, new: Record) -> bool:
    """Whether `new` would store exactly what `old` holds: numbers as written (1 and 1.0 differ
    in the answers, so they differ here), types distinct (true is not 1), key order aside."""

    def typed(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            return ["b", value]
        if isinstance(value, (int, Decimal)):  # as written: a body's 1 is stored as Decimal("1")
            return ["n", str(Decimal(value))]
        if isinstance(value, dict):
            return {key: typed(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return ["l", [typed(item) for item in value]]
        return ["s", str(value)]

    return json.dumps(typed(old), sort_keys=True) == json.dumps(typed(new), sort_keys=True)


def merged_metadata(kind: Kind, stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Key by key: a key patched to null is removed, the others are set; keys the patch does not
    name stay as stored (null values included). The result must still fit the metadata bounds."""
    merged = dict(stored)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    validation.parse(kind.patch_model, {"metadata": merged})
    validation.check_indexable(merged)
    return merged
