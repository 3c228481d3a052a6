"""API keys: `Authorization: Bearer <key>` names a developer. Keys are stored only as SHA-256."""
from __future__ import annotations

import hashlib
import re
import secrets

from .errors import Unauthorized
from .store import Store

_DEVELOPER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


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
        if not sep or not key or not _DEVELOPER_ID.match(developer):
            raise ValueError(f"bad SESSIONS_API_KEYS entry {entry.split(':')[0]!r}: "
                             "want developer:key, developer made of letters, digits, _ . -")
        pairs.append((developer, key))
    return pairs


def register_key(store: Store, developer: str, key: str) -> None:
    if not _DEVELOPER_ID.match(developer):
        raise ValueError(f"bad developer id {developer!r}")
    store.put_api_key(hash_key(key), developer)
