"""API keys: `Authorization: Bearer <key>` names a developer. Keys are stored only as SHA-256,
with a short prefix (shown in lists, never enough to use); a key is shown once, when made.
Every request reads its key (strongly consistent, no cache), so a revoked key is refused at once."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from chalicelib.shared import clock
from chalicelib.shared.errors import Conflict, NotFound, Unauthorized
from chalicelib.store import KeyTaken, Store

PREFIX_CHARS = 10  # "sk_" and 7 more: enough to tell keys apart, far too little to guess

DEVELOPER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def developer_of(store: Store, key: str) -> str:
    """The developer id a key belongs to; Unauthorized when no one holds it."""
    developer = store.developer_for_key(hash_key(key))
    if developer is None:
        raise Unauthorized("unknown API key", key_sent=True)
    return developer


def parse_key_spec(spec: str) -> list[tuple[str, str]]:
    """`developer:key,developer:key` (the SESSIONS_API_KEYS format) as pairs. One key given to two
    developers is refused: a key names one developer."""
    pairs: list[tuple[str, str]] = []
    holders: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        developer, sep, key = entry.partition(":")
        if not sep or not key or not DEVELOPER_ID.match(developer):
            raise ValueError(
                f"bad SESSIONS_API_KEYS entry {entry.split(':')[0]!r}: "
                "want developer:key, developer made of letters, digits, _ . -"
            )
        if holders.setdefault(key, developer) != developer:
            raise ValueError(
                f"SESSIONS_API_KEYS gives developer {developer!r} the key it gives developer "
                f"{holders[key]!r}: a key belongs to one developer"
            )
        pairs.append((developer, key))
    return pairs


class KeyHeldByAnother(Conflict):
    """The key is another developer's already."""

    def __init__(self, developer: str, owner: str | None) -> None:
        super().__init__(f"this key is developer {owner!r}'s already; it cannot be registered for {developer!r}")
        self.owner = owner


def register_key(store: Store, developer: str, key: str) -> bool:
    """Register `key` for `developer`: True if it was new, False if it was this developer's
    already (nothing changes). A key another developer holds is refused (KeyHeldByAnother):
    a key never changes owner."""
    if not DEVELOPER_ID.match(developer):
        raise ValueError(f"bad developer id {developer!r}")
    try:
        store.put_api_key(hash_key(key), developer, prefix=key[:PREFIX_CHARS], created_at=clock.now())
    except KeyTaken as taken:
        if taken.owner != developer:
            raise KeyHeldByAnother(developer, taken.owner) from None
        return False
    return True


def create_key(store: Store, developer: str) -> str:
    """A new key for the developer, returned this once; only its hash and prefix are kept."""
    key = new_key()
    register_key(store, developer, key)
    return key


def list_keys(store: Store, developer: str) -> list[dict[str, Any]]:
    """The developer's keys, as {prefix, created_at} (and the hash, which cannot be used)."""
    return store.api_keys(developer)


def revoke_key(store: Store, developer: str, prefix: str) -> dict[str, Any]:
    """Revoke the developer's one key that is `prefix` whole, or starts with it, or whose hash
    does. NotFound unless exactly one matches; Conflict if its deletion deleted nothing (the
    key's record is not this developer's)."""
    whole = hash_key(prefix) if prefix else None
    keys = store.api_keys(developer)
    matching = [k for k in keys if k["key_hash"] == whole] or (
        [k for k in keys if k["prefix"].startswith(prefix) or k["key_hash"].startswith(prefix)] if prefix else []
    )
    if len(matching) != 1:
        raise NotFound(f"{len(matching)} keys of developer {developer} match {prefix!r}; name exactly one")
    if not store.delete_api_key(developer, matching[0]["key_hash"], matching[0]["prefix"]):
        raise Conflict(
            f"developer {developer} lists key {matching[0]['prefix']} but does not hold it; nothing was revoked"
        )
    return matching[0]
