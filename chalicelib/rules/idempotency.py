"""Idempotency-Key on the POSTs that create (agents, users, sessions, history appends, chat).

The first request with a key writes a receipt (the request's fingerprint and its answer) in the
SAME transaction as what it creates, so "created" and "remembered as created" cannot part: a
crash leaves either both or neither. Within 24 hours the same key with the same request answers
the first answer again and creates nothing; with a different request it is a 422. Receipts
expire through the table's TTL. Two identical requests racing each other both run up to their
transaction; one commits, the other's receipt condition fails and it answers the first's answer.

Powertools' idempotency utility was considered: it keeps its records in a table of its own with
an "in progress" marker written before the work and the answer after it, so it cannot join our
transaction (a crash between the two either blocks the key or runs the work twice), and it adds
its imports to every cold start. This module is a few dozen lines over the store we have.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.rules import models
from chalicelib.shared import clock, jsonio
from chalicelib.shared.errors import BadRequest, ValidationFailed
from chalicelib.store import ReceiptTaken, Store

TTL_SECONDS = 24 * 3600
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Receipt:
    """What a creating operation writes beside its records when the request had a key."""

    key_hash: str
    fingerprint: str
    expires_at: int

    def record(
        self, status: int, answer: Any = None, positions: list[str] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """The item to store: the answer itself, or, for a history append (whose answer can be
        megabytes), where its messages are, to be read back on a replay."""
        record = {
            "key_hash": self.key_hash,
            "fingerprint": self.fingerprint,
            "status": status,
            "expires_at": self.expires_at,
        }
        if positions is not None:
            return {**record, "positions": positions, "session_id": session_id}
        return {**record, "answer": jsonio.dumps(answer)}


@dataclass(frozen=True)
class Replay:
    status: int
    body: Any


def run(
    store: Store, developer: str, key: str, fingerprint_of: dict[str, Any], operation: Callable[[Receipt], Any]
) -> Any:
    """The operation's answer, run with a receipt to write; or a Replay of the first answer."""
    if not key or len(key) > MAX_KEY_CHARS or not all("!" <= ch <= "~" for ch in key):
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters")
    receipt = Receipt(
        key_hash=hashlib.sha256(key.encode()).hexdigest(),
        fingerprint=_fingerprint(fingerprint_of),
        expires_at=int(clock.epoch_seconds()) + TTL_SECONDS,
    )
    stored = store.receipt(developer, receipt.key_hash)
    if stored is None or int(stored["expires_at"]) < clock.epoch_seconds():
        try:
            return operation(receipt)
        except ReceiptTaken:  # an identical request committed first
            stored = store.receipt(developer, receipt.key_hash)
    if stored["fingerprint"] != receipt.fingerprint:
        raise ValidationFailed(
            "this Idempotency-Key was already used, within 24 hours, for a different request; "
            "use a new key for a new request",
            details=[{"field": "Idempotency-Key", "message": "used for a different request", "type": "idempotency"}],
        )
    return _replay(store, developer, stored)


def _replay(store: Store, developer: str, stored: dict[str, Any]) -> Replay:
    if "positions" in stored:
        # A history clear since may have removed some; what is left is answered.
        messages = store.messages_at(developer, stored["session_id"], list(stored["positions"]))
        return Replay(int(stored["status"]), {"items": [models.Message.model_validate(m) for m in messages]})
    return Replay(int(stored["status"]), jsonio.loads(stored["answer"], "stored answer"))


def _fingerprint(request: dict[str, Any]) -> str:
    """The request's operation, path ids and body, canonically: the same request, the same hash."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
