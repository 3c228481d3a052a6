"""A session as a LangGraph thread: its checkpoints and their pending writes (store/checkpoints.py).

A checkpoint is written whole (one item, at most models.MAX_CHECKPOINT_BYTES, else a 422 that
says so); a thread's list is newest first (checkpoint ids sort by time), of one namespace or of
all, strictly before a checkpoint, filtered on top-level metadata keys as lists are, and paged by
cursor. The session must exist; deleting it (or its thread, which is the same) takes them all.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from itertools import groupby
from typing import Any

from chalicelib.rules import cursor, filters, models
from chalicelib.rules.conflicts import retry_on_conflict
from chalicelib.rules.parameters import CheckpointListQuery, CheckpointQuery
from chalicelib.shared import clock, jsonio
from chalicelib.shared.errors import BadRequest, NotFound, ValidationFailed
from chalicelib.store import MissingRecord, Store, VersionConflict


def _blob_bytes(blob: models.Blob, field: str) -> bytes:
    try:
        data = base64.b64decode(blob.data, validate=True)
    except ValueError:  # binascii.Error: a length no base64 has
        raise ValidationFailed(
            f"{field} is not base64", details=[{"field": field, "message": "not base64", "type": "base64"}]
        ) from None
    if len(data) > models.MAX_CHECKPOINT_BYTES:
        raise _too_large(field, len(data))
    return data


def _too_large(field: str, size: int) -> ValidationFailed:
    return ValidationFailed(
        f"{field} is {size} bytes; a checkpoint (its blob and metadata together) or a pending write is at most "
        f"{models.MAX_CHECKPOINT_BYTES} bytes, one DynamoDB item: store large values elsewhere and keep a reference",
        details=[
            {"field": field, "message": f"at most {models.MAX_CHECKPOINT_BYTES} bytes", "type": "object_too_large"}
        ],
    )


_ID = re.compile(models.CHECKPOINT_ID)


def _checked(checkpoint_id: str, session_id: str) -> str:
    """A path's checkpoint id, held to the body's rule for it (it is in the item's key), once the
    session's is a UUID (a path id that is not is a 404, as on every route)."""
    if not clock.is_uuid(session_id):
        raise NotFound(f"session {session_id} not found")
    if not _ID.match(checkpoint_id):
        raise BadRequest("checkpoint_id must be 1 to 128 of A-Z, a-z, 0-9, _ . : and -")
    return checkpoint_id


def _session_must_exist(store: Store, developer: str, session_id: str) -> None:
    if not store.session_exists(developer, session_id):
        raise NotFound(f"session {session_id} not found")


def put(
    store: Store, developer: str, session_id: str, checkpoint_id: str, body: models.CheckpointPut
) -> models.CheckpointStored:
    _checked(checkpoint_id, session_id)
    data = _blob_bytes(body.checkpoint, "checkpoint.data")
    size = len(data) + len(jsonio.dumps(body.metadata).encode())
    if size > models.MAX_CHECKPOINT_BYTES:
        raise _too_large("checkpoint", size)
    created_at = clock.now()
    try:
        store.put_checkpoint(
            developer,
            session_id,
            {
                "checkpoint_ns": body.checkpoint_ns,
                "checkpoint_id": checkpoint_id,
                "parent_checkpoint_id": body.parent_checkpoint_id,
                "type": body.checkpoint.type,
                "data": data,
                "metadata": body.metadata,
                "created_at": created_at,
            },
        )
    except MissingRecord:
        raise NotFound(f"session {session_id} not found") from None
    return models.CheckpointStored(checkpoint_ns=body.checkpoint_ns, checkpoint_id=checkpoint_id, created_at=created_at)


def put_writes(
    store: Store, developer: str, session_id: str, checkpoint_id: str, body: models.CheckpointWrites
) -> models.WritesStored:
    """The writes not already there (a task's write of a non-negative index is kept as first
    written; a special channel's, negative, is written over)."""
    _checked(checkpoint_id, session_id)
    writes = [
        {
            "checkpoint_ns": body.checkpoint_ns,
            "checkpoint_id": checkpoint_id,
            "task_id": body.task_id,
            "task_path": body.task_path,
            "channel": write.channel,
            "idx": write.idx,
            "type": write.value.type,
            "data": _blob_bytes(write.value, f"writes.{n}.value.data"),
        }
        for n, write in enumerate(body.writes)
    ]

    # One write per index, as the saver means it: the first of a non-negative index, the last of a
    # negative one (and DynamoDB takes one action per item in a transaction).
    unique: dict[tuple[str, int], dict[str, Any]] = {}
    for write in writes:
        if write["idx"] < 0 or (write["task_id"], write["idx"]) not in unique:
            unique[(write["task_id"], write["idx"])] = write

    def attempt(_: VersionConflict | None) -> models.WritesStored:
        there = store.checkpoint_writes_there(developer, session_id, body.checkpoint_ns, checkpoint_id)
        wanted = [w for w in unique.values() if w["idx"] < 0 or (w["task_id"], w["idx"]) not in there]
        try:
            store.put_checkpoint_writes(developer, session_id, body.checkpoint_ns, checkpoint_id, wanted)
        except MissingRecord:
            raise NotFound(f"session {session_id} not found") from None
        return models.WritesStored(stored=len(wanted))

    return retry_on_conflict(attempt, f"checkpoint {checkpoint_id}'s writes kept changing; retry")


def _tuples(items: Iterator[dict[str, Any]]) -> Iterator[models.Checkpoint]:
    """Checkpoints with their writes, from items newest first (a checkpoint's writes come just
    before it: its item's key ends in c, theirs in w#...)."""
    for _, group in groupby(items, key=lambda item: (item["checkpoint_ns"], item["checkpoint_id"])):
        members = list(group)
        head = next((item for item in members if item["_sk"].endswith("#c")), None)
        if head is None:  # writes whose checkpoint is being deleted
            continue
        # in the order a super-step applies them (LangGraph's writes_sort_key): task path, task, index
        writes = sorted(
            (item for item in members if item is not head),
            key=lambda w: (w.get("task_path", ""), w["task_id"], int(w["idx"])),
        )
        yield models.Checkpoint(
            checkpoint_ns=head["checkpoint_ns"],
            checkpoint_id=head["checkpoint_id"],
            parent_checkpoint_id=head.get("parent_checkpoint_id"),
            checkpoint=models.BlobOut(type=head["type"], data=base64.b64encode(head["data"]).decode()),
            metadata=head.get("metadata", {}),  # as stored (numbers Decimal): filters compare these
            pending_writes=[
                models.PendingWrite(
                    task_id=w["task_id"],
                    channel=w["channel"],
                    value=models.BlobOut(type=w["type"], data=base64.b64encode(w["data"]).decode()),
                    task_path=w.get("task_path", ""),
                    idx=int(w["idx"]),
                )
                for w in writes
            ],
            created_at=head["created_at"],
        )


def get(store: Store, developer: str, session_id: str, checkpoint_id: str, query: CheckpointQuery) -> models.Checkpoint:
    namespace = query.checkpoint_ns or ""
    items = store.checkpoint_items(developer, session_id, namespace, _checked(checkpoint_id, session_id))
    found = next(_tuples(items), None)
    if found is None:
        _session_must_exist(store, developer, session_id)
        raise NotFound(f"checkpoint {checkpoint_id} not found in session {session_id}")
    return found


def _digest(session_id: str, query: CheckpointListQuery) -> str:
    shape = [session_id, query.checkpoint_ns, sorted((k, jsonio.dumps(v)) for k, v in query.metadata_filter.items())]
    return hashlib.sha256(jsonio.dumps(shape).encode()).hexdigest()[:32]


def list_checkpoints(store: Store, developer: str, session_id: str, query: CheckpointListQuery) -> dict[str, Any]:
    """A page newest first; `next_cursor` continues it."""
    bound_to = _digest(session_id, query)
    before = cursor.decode(query.cursor, developer, bound_to) if query.cursor else query.before
    if query.cursor and query.before:
        before = min(before, query.before)
    _session_must_exist(store, developer, session_id)
    found = _tuples(store.checkpoint_items(developer, session_id, query.checkpoint_ns, before=before))
    if query.checkpoint_ns is None:  # every namespace: merged newest first
        found = iter(sorted(found, key=lambda c: c.checkpoint_id, reverse=True))
    matching = (
        c
        for c in found
        if (before is None or c.checkpoint_id < before) and filters.matches(c.metadata, query.metadata_filter)
    )
    page = []
    for checkpoint in matching:
        if len(page) == query.limit:
            return {"items": page, "next_cursor": cursor.encode(developer, bound_to, page[-1].checkpoint_id)}
        page.append(checkpoint)
    return {"items": page, "next_cursor": None}


def delete(store: Store, developer: str, session_id: str, checkpoint_id: str, query: CheckpointQuery) -> models.Deleted:
    namespace = query.checkpoint_ns or ""
    if not store.delete_checkpoint(developer, session_id, namespace, _checked(checkpoint_id, session_id)):
        _session_must_exist(store, developer, session_id)
        raise NotFound(f"checkpoint {checkpoint_id} not found in session {session_id}")
    return models.Deleted(id=checkpoint_id, deleted_at=clock.now())
