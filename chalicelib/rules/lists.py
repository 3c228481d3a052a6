"""Lists of agents, users and sessions, planned over index terms (chalicelib/store/index.py).

Every condition that has a term is a candidate source; the most selective one is found by
probing (reading a few entries of each), then streamed in sort order while the records are
batch-read and every condition is checked on them, so the index makes a list cheaper, never
different. Sorting by updated_at with a metadata condition gathers the (small) matching set and
sorts it, since metadata terms are kept in creation order only. docs/design.md has the costs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from chalicelib.rules import cursor, filters
from chalicelib.rules.kinds import Kind
from chalicelib.rules.parameters import ListQuery
from chalicelib.rules.records import live, wire
from chalicelib.shared import jsonio
from chalicelib.store import IndexEntry, Record, Store, index, position_in_order

READ_CHUNK = 100  # records per BatchGetItem, entries per Query page, at most

PROBE_ENTRIES = 100  # entries read at most per candidate term to compare selectivity
GATHER_MAX = 1000  # largest metadata match set sorted in memory for sort_by=updated_at
# Terms probed at most: the parents first, then the metadata conditions in the order given. The
# other conditions are checked on the records read. So a filter's probe costs at most 4 x 5
# Queries (8, 16, 32, 64, 100 entries a term), however many conditions it has.
PROBED_TERMS = 4


def digest(kind: Kind, query: ListQuery) -> str:
    """What a cursor is bound to: everything that selects and orders, not limit or offset."""
    status = _status(query)
    shape = [
        kind.name,
        query.sort_by,
        query.descending,
        sorted(query.parents),
        sorted((k, jsonio.dumps(v)) for k, v in query.metadata_filter.items()),
        *([status] if status else []),  # (cursors made before it existed stay valid)
    ]
    return hashlib.sha256(jsonio.dumps(shape).encode("utf-8")).hexdigest()[:32]


def _status(query: ListQuery) -> str | None:
    """ "active" or "ended": sessions only."""
    return getattr(query, "status", None)


def list_records(store: Store, kind: Kind, developer: str, query: ListQuery | None = None) -> dict[str, Any]:
    """One page of a developer's records of a kind (the query as rules/parameters.py reads it
    from the query string), and the cursor to the next."""
    query = query or kind.list_query()
    bound_to = digest(kind, query)
    after = cursor.decode(query.cursor, developer, bound_to) if query.cursor else None
    wanted = query.offset + query.limit + 1  # one more than the page: is there a next page?
    matching = (record for record in _candidates(store, kind, developer, query, after) if _matches(record, query))
    found = list(islice(matching, query.offset, wanted))
    page = found[: query.limit]
    next_cursor = None
    if len(found) > query.limit:
        next_cursor = cursor.encode(developer, bound_to, position_in_order(page[-1], query.sort_by))
    return {"items": [wire(kind, record) for record in page], "next_cursor": next_cursor}


def _matches(record: Record, query: ListQuery) -> bool:
    return (
        all(record.get(f"{kind}_id") == pid for kind, pid in query.parents)
        and (_status(query) is None or record.get("status", "active") == _status(query))
        and filters.matches(record.get("metadata", {}), query.metadata_filter)
    )


def _candidates(
    store: Store, kind: Kind, developer: str, query: ListQuery, after: str | None
) -> Iterator[dict[str, Any]]:
    """Records that may match, in the query's order, past its cursor; a superset of the answer
    that reads as little as the index allows."""
    # Ended sessions have a term of their own; active ones are the rest of `all` (or a parent's).
    ended = [index.ENDED] if _status(query) == "ended" else []
    ordered = [index.parent_term(k, pid) for k, pid in query.parents] + ended or [index.ALL]
    metadata = [term for key, value in query.metadata_filter.items() if (term := index.metadata_term(key, value))]

    first_page = min(query.offset + query.limit + 1, READ_CHUNK)

    def keys(term: str, limit: int | None = None, after: str | None = after) -> Iterator[IndexEntry]:
        order = query.sort_by if query.sort_by in index.orders(term) else "created_at"
        return store.index_entries(
            developer,
            kind.name,
            term,
            order,
            query.descending,
            after=after,
            page_size=first_page if limit is None else min(limit, READ_CHUNK),
            limit=limit,
        )

    candidates = ([term for term in ordered if term != index.ALL] + metadata)[:PROBED_TERMS]
    if query.sort_by == "created_at" or not metadata:
        best, probed = _most_selective(candidates, keys)
        source = probed if probed is not None else keys(best or ordered[0])
        yield from _records_in_order(store, kind, developer, (entry.record_id for entry in source), first_page)
        return
    # sort_by=updated_at with metadata conditions: metadata terms are in creation order, so gather
    # the smallest candidate set (a parent's sessions may be smaller), if small enough, and sort it.
    _, probed = _most_selective(
        candidates, lambda term, limit=None, after=None: keys(term, limit, after), most=GATHER_MAX
    )
    if probed is None:  # every candidate is large: walk the update order and filter
        walked = (entry.record_id for entry in keys(ordered[0]))
        yield from _records_in_order(store, kind, developer, walked, first_page)
        return
    records = list(_records_in_order(store, kind, developer, (entry.record_id for entry in probed)))
    records.sort(key=lambda record: position_in_order(record, query.sort_by), reverse=query.descending)
    for record in records:
        position = position_in_order(record, query.sort_by)
        if after is None or (position < after if query.descending else position > after):
            yield record


def _most_selective(
    terms: list[str], keys: Callable[..., Iterator[IndexEntry]], most: int = PROBE_ENTRIES
) -> tuple[str | None, list[IndexEntry] | None]:
    """The term with the fewest entries, and its entries if they were read to the end.

    Probes in rounds that take each term to 8, 16, 32, ... entries read (each round continuing
    after the last key read, so no entry is read twice) and stops at the first round in which some
    term runs out: finding a 10-entry term among large ones reads about 16 entries of each, in
    whatever order the terms come. With one term and nothing to gather there is no probe."""
    if len(terms) < 2 and most == PROBE_ENTRIES:
        return (terms[0] if terms else None), None
    read: dict[str, list[IndexEntry]] = {term: [] for term in terms}
    limit = min(8, most)
    while True:
        for term, got in read.items():
            more = limit - len(got)
            got += keys(term, more, got[-1].position) if got else keys(term, more)
        exhausted = [term for term, got in read.items() if len(got) < limit]
        if exhausted:
            smallest = min(exhausted, key=lambda term: len(read[term]))
            return smallest, read[smallest]
        if limit >= most:
            return terms[0], None
        limit = min(limit * 2, most)


def _records_in_order(
    store: Store, kind: Kind, developer: str, ids: Iterator[str], first_chunk: int = READ_CHUNK
) -> Iterator[dict[str, Any]]:
    """Records for a stream of ids, fetched a batch at a time in the ids' order, the batches
    growing from `first_chunk` to 100 (a short page reads little; a filtered walk few times).
    An id whose record vanished between the two reads (a concurrent delete) is skipped."""
    chunk = first_chunk
    while batch := list(islice(ids, chunk)):
        found = store.get_many(developer, kind.name, batch)
        # an entry read just before its record expired (entries of expired records are skipped in the Query)
        yield from (found[i] for i in batch if live(found.get(i)))
        chunk = min(chunk * 2, READ_CHUNK)
