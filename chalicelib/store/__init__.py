"""The DynamoDB store: the only package that knows keys, expressions, typed values and botocore.

Above it, code speaks in records (typed dicts of a resource's fields: stored.py) and the store's
named errors. Its modules:

    keys.py     the key layout (every pk and sk), and `parse` to read one back
    index.py    which index partitions ("terms") a record has entries in
    codec.py    plain values <-> DynamoDB's typed values
    table.py    Store: the request path's operations, one facade over the aggregates' modules:
                records.py (records, index entries, API keys), history.py, forks.py,
                purges.py (markers, the purge batch), receipts.py; calls.py (pages,
                batches, transactions: transaction.py), items.py (shared shapes and fields)
    stored.py   the typed records (agents, users, sessions) it hands back, and the session's
                bookkeeping fields, declared and explained once
    lineage.py  a session's history as reads see it: what it inherits from forks, what is hidden
    scans.py    operators' full-table Scans and batch writes
    client.py   the boto3 client's settings, botocore's errors translated
    current.py  the process-wide store, made on first use
    errors.py   the named errors
    schema.py   the table's one definition
    iam.py      the IAM actions the request path needs
"""

from . import lineage
from .client import begin_request, client_config, write_outcome_unknown
from .current import get_store, use_store
from .errors import KeyTaken, MissingRecord, ReceiptTaken, StoreError, StoreFailed, StoreUnavailable, VersionConflict
from .items import EXPIRES, LAST_MESSAGE_ID, LAST_POSITION, OPEN_CALLS, POSITIONAL_IDS, REWIND, HistoryChange
from .keys import IndexEntry, inherited_id, message_ids, message_positions, message_time
from .keys import parse as parse_key
from .keys import sort_key as position_in_order
from .lineage import BEFORE_ANY_MESSAGE, FORKED_THROUGH, HIDDEN, LINEAGE, hidden_ranges
from .stored import SUMMARY_UNTIL, AgentRecord, Record, SessionRecord, UserRecord
from .table import Store

__all__ = [
    "BEFORE_ANY_MESSAGE",
    "FORKED_THROUGH",
    "HIDDEN",
    "LINEAGE",
    "hidden_ranges",
    "IndexEntry",
    "HistoryChange",
    "inherited_id",
    "message_ids",
    "message_positions",
    "message_time",
    "parse_key",
    "position_in_order",
    "lineage",
    "EXPIRES",
    "LAST_MESSAGE_ID",
    "LAST_POSITION",
    "OPEN_CALLS",
    "POSITIONAL_IDS",
    "REWIND",
    "KeyTaken",
    "MissingRecord",
    "ReceiptTaken",
    "Store",
    "AgentRecord",
    "UserRecord",
    "SessionRecord",
    "Record",
    "SUMMARY_UNTIL",
    "StoreError",
    "StoreFailed",
    "StoreUnavailable",
    "VersionConflict",
    "begin_request",
    "client_config",
    "get_store",
    "use_store",
    "write_outcome_unknown",
]
