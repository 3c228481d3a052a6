"""Opaque, tamper-proof list cursors: `<payload>.<hmac>`, both base64url.

The payload names the developer, a digest of the query it continues and the sort key of the last
item answered; the HMAC (SHA-256, secret from SESSIONS_CURSOR_SECRET) makes every other cursor a
forgery. A cursor only ever continues the same developer's same query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets

from chalicelib.shared.errors import BadRequest

_process_secret: bytes | None = None


def _secret() -> bytes:
    configured = os.environ.get("SESSIONS_CURSOR_SECRET")
    if configured:
        return configured.encode("utf-8")
    global _process_secret
    if _process_secret is None:
        # Fine for one local process; a deployment sets the variable so every Lambda agrees.
        logging.getLogger("sessions").warning("SESSIONS_CURSOR_SECRET is not set: cursors last one process")
        _process_secret = secrets.token_bytes(32)
    return _process_secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(payload: str) -> str:
    return _b64(hmac.new(_secret(), payload.encode("ascii"), hashlib.sha256).digest())


def encode(developer: str, query_digest: str, after: str) -> str:
    payload = _b64(json.dumps({"d": developer, "q": query_digest, "a": after}, separators=(",", ":")).encode())
    return f"{payload}.{_signature(payload)}"


def decode(cursor: str, developer: str, query_digest: str) -> str:
    """The sort key the cursor continues after; BadRequest for anything not made by `encode` for
    this developer and this query."""
    invalid = BadRequest(
        "cursor is not valid for this query: pass next_cursor from the previous page of the same list, unchanged"
    )
    payload, _, signature = cursor.partition(".")
    if (
        not payload
        or not (payload.isascii() and signature.isascii())
        or not hmac.compare_digest(signature, _signature(payload))
    ):
        raise invalid
    try:
        fields = json.loads(_unb64(payload))
        after = fields["a"]
    except (ValueError, KeyError, TypeError):
        raise invalid from None
    if fields.get("d") != developer or fields.get("q") != query_digest or not isinstance(after, str):
        raise invalid
    return after
