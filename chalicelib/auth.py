"""API keys: `Authorization: Bearer <key>` names a developer. Keys are stored only as SHA-256,
with a short prefix (shown in lists, never enough to use); a key is shown once, when made.
Every request reads its key (strongly consistent, no cache), so a revoked key is refused at once."""
from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from . import clock
from .errors import NotFound, Unauthorized
from .store import Store

PREFIX_CHARS = 10           # "sk_" and 7 more: enough to tell keys apart, far too little to guess

DEVELOPER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def authenticate(authorization: str | None, store: Store) -> str:
    """The developer id the header's key belongs to; Unauthorized otherwise."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    developer = store.developer_for_key(hash_key(key))
    if developer is None:
        raise Unauthorized("unknown API key")
    return developer


def parse_key_spec(spec: str) -> list[tuple[str, str]]:
    """`developer:key,developer:key` (the SESSIONS_API_KEYS format) as pairs."""
    pairs = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        developer, sep, key = entry.partition(":")
        if not sep or not key or not DEVELOPER_ID.match(developer):
            raise ValueError(f"bad SESSIONS_API_KEYS entry {entry.split(':')[0]!r}: "
                             "want developer:key, developer made of letters, digits, _ . -")
        pairs.append((developer, key))
    return pairs


def register_key(store: Store, developer: str, key: str) -> None:
    if not DEVELOPER_ID.match(developer):
        raise ValueError(f"bad developer id {developer!r}")
    store.put_api_key(hash_key(key), developer, prefix=key[:PREFIX_CHARS], created_at=clock.now())


def create_key(store: Store, developer: str) -> str:
    """A new key for the developer, returned this once; only its hash and prefix are kept."""
    key = new_key()
    register_key(store, developer, key)
    return key


def list_keys(store: Store, developer: str) -> list[dict[str, Any]]:
    """The developer's keys, as {prefix, created_at} (and the hash, which cannot be used)."""
    return store.api_keys(developer)


def revoke_key(store: Store, developer: str, prefix: str) -> dict[str, Any]:
    """Revoke the developer's one key that starts with `prefix` (or whose hash does)."""
    matching = [k for k in store.api_keys(developer)
                if k["prefix"].startswith(prefix) or k["key_hash"].startswith(prefix)] if prefix else []
    if len(matching) != 1:
        raise NotFound(f"{len(matching)} keys of developer {developer} match {prefix!r}; name exactly one")
    store.delete_api_key(developer, matching[0]["key_hash"], matching[0]["prefix"])
    return matching[0]
