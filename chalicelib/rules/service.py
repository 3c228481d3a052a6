"""The service rules, free of HTTP: every operation takes the developer id and plain values
(a parsed JSON body, query parameters as strings) and returns a wire model or raises a
ServiceError. HTTP routes and direct Lambda invocation (chalicelib/web/invoke.py) both call these.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from chalicelib.shared import clock
from chalicelib.store import index
from chalicelib.rules import models
from chalicelib.shared.errors import BadRequest, Conflict, DeletionInProgress, NotFound, PreconditionFailed, ValidationFailed
from chalicelib.rules.idempotency import Receipt
from chalicelib.store import LAST_POSITION, MissingRecord, Store, VersionConflict
from chalicelib.store.keys import id_in

UPDATE_ATTEMPTS = 10          # optimistic-concurrency rounds before a 409 (jittered backoff between)
DELETE_BUDGET_SECONDS = 15.0  # cascading work per request: with one worst DynamoDB call (12 s) inside API Gateway's 29 s
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 100, 1000


@dataclass(frozen=True)
class Kind:
    """What differs between agents, users and sessions; everything else is shared."""
    name: str
    create_model: type[BaseModel]
    patch_model: type[BaseModel]
    replace_model: type[BaseModel]
    wire_model: type[BaseModel]
    defaults: dict[str, Any]
    immutable: frozenset[str] = frozenset({"id", "created_at", "updated_at"})
    unsupported: frozenset[str] = frozenset()        # accepted only empty, never stored
    references: tuple[str, ...] = ()                 # fields naming a parent: "agent_id" -> agent

    def parents(self, record: dict[str, Any]) -> list[tuple[str, str]]:
        """(kind, id) of each parent the record names; they must exist, and hold a link to it."""
        return [(name.removesuffix("_id"), record[name]) for name in self.references if record.get(name)]


AGENTS = Kind("agent", models.AgentCreate, models.AgentPatch, models.AgentReplace, models.Agent,
              defaults={"instructions": [], "model": models.DEFAULT_MODEL, "default_settings": {}, "metadata": {}},
              unsupported=frozenset({"tools", "docs"}))
USERS = Kind("user", models.UserCreate, models.UserPatch, models.UserReplace, models.User,
             defaults={"metadata": {}}, unsupported=frozenset({"docs"}))
SESSIONS = Kind("session", models.SessionCreate, models.SessionPatch, models.SessionReplace, models.Session,
                defaults={"metadata": {}, "render_templates": False, LAST_POSITION: ""},
                immutable=frozenset({"id", "created_at", "updated_at", "agent_id", "user_id", "summary"}),
                references=("agent_id", "user_id"))
KINDS = {kind.name: kind for kind in (AGENTS, USERS, SESSIONS)}


# --- validation -----------------------------------------------------------------------------------

def parse_body(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed("request body is invalid", details=[
            {"field": ".".join(str(part) for part in error["loc"]) or "body",
             "message": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        ]) from None


def _validate(model: type[BaseModel], body: dict[str, Any]) -> dict[str, Any]:
    """The body's fields that are set and not null (a null means "not given", as the SDK sends)."""
    parsed = parse_body(model, body)
    return {name: value for name, value in parsed if value is not None and name in parsed.model_fields_set}


def _refuse_immutable(kind: Kind, body: dict[str, Any]) -> None:
    present = sorted(kind.immutable & body.keys())
    if present:
        raise ValidationFailed(
            f"{', '.join(present)} cannot be changed on a {kind.name}; nothing was changed",
            details=[{"field": name, "message": "cannot be changed after creation", "type": "immutable"}
                     for name in present])


def _require_uuid(field_name: str, value: str | None) -> None:
    if value is not None and not clock.is_uuid(value):
        raise ValidationFailed(f"{field_name} must be a UUID", details=[
            {"field": field_name, "message": "must be a UUID", "type": "uuid"}])


def wire(kind: Kind, record: dict[str, Any]) -> BaseModel:
    answer = kind.wire_model.model_validate(record)
    answer._version = int(record["version"]) if record.get("version") is not None else None
    return answer


def etag(version: int) -> str:
    return f'"{version}"'


def _check_if_match(kind: Kind, record: dict[str, Any], if_match: str | None) -> None:
    """`If-Match` (RFC 9110): `*`, or a list of ETags one of which must be the record's
    current one (weak ones compare by their value). A stale one is a 412 and changes nothing."""
    if if_match is None or if_match.strip() == "*":
        return
    wanted = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if etag(int(record["version"])) not in wanted:
        raise PreconditionFailed(
            f"{kind.name} {record['id']} has changed: its ETag is now {etag(int(record['version']))}; "
            "read it again and retry with that If-Match")


# --- agents, users and sessions ------------------------------------------------------------------

def create(store: Store, kind: Kind, developer: str, body: dict[str, Any],
           receipt: Receipt | None = None) -> models.Created:
    data = _validate(kind.create_model, body)
    for name in kind.unsupported:
        data.pop(name, None)
    for name in kind.references:
        _require_uuid(name, data.get(name))
        if data.get(name) is not None:
            data[name] = clock.canonical_id(data[name])
    _check_indexable(data.get("metadata", {}))
    _check_default_settings(data)
    _check_templates(kind, data, set(data))
    timestamp = clock.now()
    record = {**kind.defaults, **data, "id": clock.new_id(), "created_at": timestamp,
              "updated_at": timestamp, "version": 1}
    answer = models.Created(id=record["id"], created_at=timestamp)
    try:
        store.create(developer, kind.name, record, kind.parents(record), index_terms(kind, record),
                     receipt and receipt.record(201, answer))
    except MissingRecord as missing:
        raise NotFound(f"{missing.kind} {missing.record_id} not found", details=[
            {"field": f"{missing.kind}_id", "message": f"no {missing.kind} with this id", "type": "not_found"}
        ]) from None
    return answer


def get(store: Store, kind: Kind, developer: str, record_id: str) -> BaseModel:
    return wire(kind, existing(store, kind, developer, record_id))


def update(store: Store, kind: Kind, developer: str, record_id: str, body: dict[str, Any],
           replace: bool, if_match: str | None = None) -> models.Updated:
    """PATCH (replace=False) writes the non-null fields given and merges metadata key by key,
    a key set to null removing it; PUT (replace=True) requires the model's required fields and
    replaces metadata whole. Read, change, write conditionally on the version: a concurrent
    change is retried on the fresh record, so none is lost. With `if_match`, the write happens
    only on the version the caller named: no retry, a 412 if it moved on. An update that would
    change nothing writes nothing and answers the current version (docs/api.md)."""
    _refuse_immutable(kind, body)
    changes = _validate(kind.replace_model if replace else kind.patch_model, body)
    if "metadata" in changes and replace:
        _check_indexable(changes["metadata"])
    _check_default_settings(changes)
    for attempt in range(UPDATE_ATTEMPTS):
        old = existing(store, kind, developer, record_id)
        _check_if_match(kind, old, if_match)
        new = {**old, **changes}
        if "metadata" in changes and not replace:
            new["metadata"] = _merged_metadata(kind, old.get("metadata", {}), changes["metadata"])
        if _same(old, new):     # nothing to change: no write, no new version, no move in lists
            answer = models.Updated(id=record_id, updated_at=old["updated_at"])
            answer._version = old["version"]
            return answer
        _check_templates(kind, new, set(changes))
        new["updated_at"] = clock.after(old["updated_at"])
        new["version"] = old["version"] + 1
        try:
            store.replace(developer, kind.name, old, new, index_terms(kind, old), index_terms(kind, new))
        except VersionConflict:
            back_off(attempt)
            continue
        except MissingRecord:
            raise NotFound(f"{kind.name} {record_id} not found") from None
        answer = models.Updated(id=record_id, updated_at=new["updated_at"])
        answer._version = new["version"]
        return answer
    raise Conflict(f"{kind.name} {record_id} kept changing under this update; retry it")


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether `new` would store exactly what `old` holds: numbers as written (1 and 1.0 differ
    in the answers, so they differ here), types distinct (true is not 1), key order aside."""
    import json

    def typed(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            return ["b", value]
        if isinstance(value, (int, Decimal)):     # as written: a body's 1 is stored as Decimal("1")
            return ["n", str(Decimal(value))]
        if isinstance(value, dict):
            return {key: typed(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return ["l", [typed(item) for item in value]]
        return ["s", str(value)]

    return json.dumps(typed(old), sort_keys=True) == json.dumps(typed(new), sort_keys=True)


def back_off(attempt: int) -> None:
    """Full jitter, 5 ms doubling to 100 ms: colliding writers spread out instead of colliding
    again in lockstep. Ten rounds wait at most about half a second in all."""
    time.sleep(random.uniform(0, min(0.1, 0.005 * 2 ** attempt)))


def _merged_metadata(kind: Kind, stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Key by key: a key patched to null is removed, the others are set; keys the patch does not
    name stay as stored (null values included). The result must still fit the metadata bounds."""
    merged = dict(stored)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    parse_body(kind.patch_model, {"metadata": merged})
    _check_indexable(merged)
    return merged


def _check_indexable(metadata: dict[str, Any]) -> None:
    """Every indexed value is an index entry written with the record in one transaction."""
    count = len(index.metadata_terms(metadata))
    if count > index.MAX_INDEXED_VALUES:
        raise ValidationFailed(
            f"metadata has {count} top-level string, number or boolean values; at most "
            f"{index.MAX_INDEXED_VALUES} are allowed (each is an index entry)",
            details=[{"field": "metadata", "message": f"at most {index.MAX_INDEXED_VALUES} indexable values",
                      "type": "too_many_indexed_values"}])


def _check_default_settings(fields: dict[str, Any]) -> None:
    """An agent's default_settings are generation settings, held to the chat's own rules when
    written (models.ChatSettings: known names, ranges, types), so that a bad one is a 422 now
    instead of in every chat of the agent later."""
    settings = fields.get("default_settings")
    if not settings:
        return
    import json

    from chalicelib.shared import jsonio

    try:   # through JSON, stored numbers (Decimal) become the ints and floats the model expects
        models.ChatSettings.model_validate(json.loads(jsonio.dumps(settings)))
    except ValidationError as exc:
        raise ValidationFailed("default_settings hold an invalid generation setting; nothing was changed", details=[
            {"field": ".".join(["default_settings", *(str(part) for part in error["loc"])]),
             "message": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_context=False, include_input=False)]) from None


def _check_templates(kind: Kind, record: dict[str, Any], changed: set[str]) -> None:
    """A session that renders templates gets its situation compiled when either changes, so a
    syntax error is a 422 now rather than at every chat later (rendering errors need the
    variables, and surface at chat or context time)."""
    if kind is SESSIONS and record.get("render_templates") and record.get("situation") \
            and changed & {"situation", "render_templates"}:
        from chalicelib.rules import templates

        templates.check(record["situation"], "situation")


def index_terms(kind: Kind, record: dict[str, Any]) -> list[str]:
    return index.terms_of(record, kind.parents(record))


def delete(store: Store, kind: Kind, developer: str, record_id: str,
           budget_seconds: float | None = None, if_match: str | None = None) -> models.Deleted:
    """Delete a record and everything under it. The record vanishes at once with a purge marker
    in the same transaction; the cascade then runs under a time budget. Past the budget the
    answer is 503 `deletion_in_progress`, and the same DELETE again resumes from the marker."""
    deadline = deadline_after(budget_seconds)
    if not clock.is_uuid(record_id):
        raise NotFound(f"{kind.name} {record_id} not found")
    pending = False
    for attempt in range(UPDATE_ATTEMPTS):
        record = store.get(developer, kind.name, record_id)
        if record is None:
            break
        _check_if_match(kind, record, if_match)
        try:
            store.delete(developer, kind.name, record, index_terms(kind, record), kind.parents(record))
            pending = True
            break
        except MissingRecord:
            break  # a concurrent DELETE won; if its cascade is unfinished we resume it below
        except VersionConflict:
            back_off(attempt)   # changed meanwhile: its index entries moved; read it again
    else:
        raise Conflict(f"{kind.name} {record_id} kept changing under this delete; retry it")
    if not pending and not store.purge_pending(developer, kind.name, record_id):
        raise NotFound(f"{kind.name} {record_id} not found")
    _purge(store, kind, developer, record_id, deadline)
    return models.Deleted(id=record_id, deleted_at=clock.now())


def finish_pending_deletes(store: Store, developer: str,
                           budget_seconds: float | None = None) -> int:
    """Complete every cascade an interrupted DELETE left behind; returns how many it finished.
    For an operator's sweep (admin CLI), safe to run at any time and any number of times."""
    deadline = deadline_after(budget_seconds)
    pending = store.pending_purges(developer)
    for kind_name, record_id in pending:
        _purge(store, KINDS[kind_name], developer, record_id, deadline)
    return len(pending)


def deadline_after(budget_seconds: float | None) -> float:
    # Read at call time, so configuration (and tests) can change the module's budget.
    return time.monotonic() + (DELETE_BUDGET_SECONDS if budget_seconds is None else budget_seconds)


def _purge(store: Store, kind: Kind, developer: str, record_id: str, deadline: float) -> None:
    def check_budget() -> None:
        if time.monotonic() > deadline:
            raise DeletionInProgress(f"deleting {kind.name} {record_id} is under way; "
                                     "repeat the DELETE to continue it")

    if kind is SESSIONS:
        while store.delete_history_batch(developer, record_id):
            check_budget()
    else:
        children = store.index_keys(developer, SESSIONS.name, index.parent_term(kind.name, record_id),
                                    "created_at", descending=False)
        for session_id in (id_in(key) for key in children):
            check_budget()
            _delete_child(store, developer, session_id)
            _purge(store, SESSIONS, developer, session_id, deadline)
        # Children whose own delete went through before an interruption are no longer in the
        # index, only in the purge markers that name this parent: finish those too.
        for session_id in store.pending_child_purges(developer, kind.name, record_id):
            check_budget()
            _purge(store, SESSIONS, developer, session_id, deadline)
    store.finish_purge(developer, kind.name, record_id)


def _delete_child(store: Store, developer: str, session_id: str) -> None:
    """Delete a session found under a parent being deleted (its history follows in _purge)."""
    for attempt in range(UPDATE_ATTEMPTS):
        session = store.get(developer, SESSIONS.name, session_id)
        if session is None:
            return      # a concurrent cascade took it; its marker is finished by whoever holds it
        try:
            store.delete(developer, SESSIONS.name, session, index_terms(SESSIONS, session), SESSIONS.parents(session))
            return
        except MissingRecord:
            return
        except VersionConflict:
            back_off(attempt)
    raise Conflict(f"session {session_id} kept changing during a cascading delete; repeat the DELETE")


def existing(store: Store, kind: Kind, developer: str, record_id: str) -> dict[str, Any]:
    record = store.get(developer, kind.name, record_id) if clock.is_uuid(record_id) else None
    if record is None:
        raise NotFound(f"{kind.name} {record_id} not found")
    return record


# --- query parameters ---------------------------------------------------------------------------

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


def refuse_unknown_params(params: dict[str, str], known: set[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        accepted = f"accepted: {', '.join(sorted(known))}" if known else "this route takes no query parameters"
        raise BadRequest(f"unknown query parameter {', '.join(unknown)}; {accepted}")
