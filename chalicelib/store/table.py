"""The store's request-path operations on the one table: records with their index entries,
history, API keys, idempotency receipts and cascading deletes, each as the fewest calls DynamoDB
allows. It speaks in records (plain dicts of a resource's fields) and named errors
(store/errors.py); keys are store/keys.py's, typed values store/codec.py's.

A record and its index entries change in one transaction, so they never disagree. A history
append is a change of its session too: its `updated_at` and update-order entries move in the
append's transaction, and the record keeps the position of the newest message (LAST_POSITION),
which the next append is stamped after.
"""

from __future__ import annotations

from .calls import TRANSACT_ATTEMPTS  # noqa: F401
from .checkpoints import Checkpoints
from .forks import Forks
from .history import History
from .purges import Purges
from .receipts import Receipts
from .records import Records


class Store(Records, History, Forks, Purges, Receipts, Checkpoints):
    """The one facade: each aggregate's operations live in its own module (records.py,
    history.py, forks.py, purges.py, receipts.py, checkpoints.py) over the same calls (calls.py)."""
