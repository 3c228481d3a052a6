"""Operators' tools, never on a request path: the admin CLI (admin.py), the export format
(transfer.py) and the consistency check (consistency.py). They read keys only through the store's
key parser (store/keys.py)."""
