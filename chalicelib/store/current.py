"""The process-wide store: made on the first request, not at import, so cold starts stay small and
no network is touched by `import app`."""

from __future__ import annotations

from .client import client_config
from .schema import table_name
from .table import Store

_store: Store | None = None


def get_store() -> Store:
    """The store for this process, made on first use."""
    global _store
    if _store is None:
        import boto3

        _store = Store(boto3.client("dynamodb", config=client_config()), table_name())
    return _store


def use_store(store: Store | None) -> None:
    """Make `store` the process-wide one (None: make a fresh one from the environment on next use)."""
    global _store
    _store = store
