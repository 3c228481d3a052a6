"""A session's history: appends (with the session's activity in the same transaction), one
message found by its id, removals, rewinds and clears (hidden ranges), and the reads that see it
as requests do: its lineage's stretches in order, none of its hidden ranges."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from . import codec, keys, lineage
from .calls import _THROTTLED, Calls, _only_conflicts, doubling
from .client import translating, unavailable
from .codec import deserialize, key, serialize
from .errors import MissingRecord, VersionConflict
from .items import (
    LAST_MESSAGE_ID,
    LAST_POSITION,
    OPEN_CALLS,
    PK,
    POSITIONAL_IDS,
    REWIND,
    SK,
    HistoryChange,
    Item,
    SessionRecord,
    holder_of,
    index_entry,
    record_key,
    still_as_read,
)
from .keys import MESSAGE_PREFIX, RECORD
from .lineage import BEFORE_ANY_MESSAGE, FORKED_THROUGH, HIDDEN, LINEAGE, hidden_ranges, is_hidden, parts
from .stored import SUMMARY_UNTIL, record_of
from .transaction import Transaction


@translating
class History(Calls):
    # history -----------------------------------------------------------------------------------

    def append_messages(
        self,
        developer: str,
        session: SessionRecord,
        positioned: list[tuple[str, Item]],
        updated_at: str,
        terms: list[str],
        receipt: Item | None = None,
        open_calls: dict[str, str] | None = None,
    ) -> None:
        """Store messages at their positions (the rules stamp them once: message_positions),
        atomically after the session's newest, and record the activity on the session in the same
        transaction: its updated_at becomes `updated_at` (its update-order entries move with it),
        LAST_POSITION the last new message's position and LAST_MESSAGE_ID its id, and OPEN_CALLS
        `open_calls` when given. Only while the session's updated_at is still the one read: a
        concurrent append or update raises VersionConflict (so does a deleted session), and the
        caller reads the session again. All messages of one append share `created_at` and the
        first one's id, so an append is contiguous and keeps its order; each Put is conditional,
        so no message ever overwrites another. The version does not change: activity is not an
        edit (docs/api.md, "Versions and idempotency")."""
        session_pk = keys.record_pk(developer, "session", session["id"])
        positions, messages = [p for p, _ in positioned], [m for _, m in positioned]
        before = keys.update_order_keys(developer, "session", session, terms)
        after = keys.update_order_keys(developer, "session", {**session, "updated_at": updated_at}, terms)
        transaction = Transaction().add(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": key(session_pk, RECORD),
                    "UpdateExpression": "SET #updated = :updated, #last = :last, #last_id = :last_id"
                    + (", #open = :open" if open_calls is not None else ""),
                    "ConditionExpression": "#updated = :seen",
                    # the session as it is now comes back with a failure: no read before the retry
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    "ExpressionAttributeNames": {
                        "#updated": "updated_at",
                        "#last": LAST_POSITION,
                        "#last_id": LAST_MESSAGE_ID,
                        **({"#open": OPEN_CALLS} if open_calls is not None else {}),
                    },
                    "ExpressionAttributeValues": {
                        ":updated": {"S": updated_at},
                        ":last": {"S": positions[-1]},
                        ":last_id": {"S": messages[-1]["id"]},
                        ":seen": {"S": session["updated_at"]},
                        **({":open": codec.value(open_calls)} if open_calls is not None else {}),
                    },
                }
            },
            if_failed=lambda current: VersionConflict(record_of(current) if current else None),
        )
        transaction.extend(self._delete(key(*k)) for k in before)
        transaction.extend(self._put(index_entry(k, session)) for k in after)
        transaction.extend(
            (
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**key(session_pk, position), **serialize(message)},
                        "ConditionExpression": "attribute_not_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": PK},
                    }
                }
                for position, message in zip(positions, messages)
            ),
            if_failed=unavailable("a message position was taken"),  # ids are random: not expected
        )
        try:
            # A conflict is not retried here: sent again unchanged, a transaction that lost a race to
            # another append would only fail its condition. The caller restamps instead.
            self._run(self._with_receipt(transaction, developer, receipt), _THROTTLED)
        except self.client.exceptions.TransactionCanceledException as exc:
            if _only_conflicts(exc):  # racing another writer of this session: read it again
                raise VersionConflict() from None
            raise

    def messages_at(self, developer: str, session_id: str, positions: list[str]) -> list[dict[str, Any]]:
        """The messages still at these positions, in the order given (one BatchGetItem)."""
        pk = keys.record_pk(developer, "session", session_id)
        found = {item[SK]["S"]: deserialize(item) for item in self._batch_get([key(pk, p) for p in positions])}
        return [found[position] for position in positions if position in found]

    def find_message(
        self, developer: str, session_id: str, message_id: str
    ) -> tuple[SessionRecord | None, str | None, Item | None]:
        """(the session, the message's position, the message), None for what is absent: one
        BatchGetItem of the session and the position the id names, and for a session from before
        ids carried positions, a Query of its history for the id if that missed."""
        pk = keys.record_pk(developer, "session", session_id)
        position = keys.position_of(message_id)
        wanted = [key(pk, RECORD)] + ([key(pk, position)] if position else [])
        found = {item[SK]["S"]: item for item in self._batch_get(wanted)}
        session = record_of(found[RECORD]) if RECORD in found else None
        item = found.get(position) if position else None
        point = lineage.fork_point(session)
        if position and point is not None and keys.message_time(position) <= keys.message_time(point):
            return self._inherited(developer, session, message_id)  # own messages are all newer
        if position and is_hidden(position, hidden_ranges(session)):
            return session, None, None  # rewound: gone for every read, whatever its purge's state
        if item is not None and item.get("id") == {"S": message_id}:
            return session, position, deserialize(item)
        if session is None or session.get(POSITIONAL_IDS):
            return session, None, None
        args = self._query_args(pk, prefix=MESSAGE_PREFIX)
        args.update(FilterExpression="#id = :id")
        args["ExpressionAttributeNames"]["#id"] = "id"
        args["ExpressionAttributeValues"][":id"] = {"S": message_id}
        for answer in self._pages("query", args):
            for item in answer["Items"]:
                if is_hidden(item[SK]["S"], hidden_ranges(session)):
                    return session, None, None
                return session, item[SK]["S"], deserialize(item)
        return session, None, None

    def _inherited(
        self, developer: str, session: SessionRecord, message_id: str
    ) -> tuple[SessionRecord | None, str | None, Item | None]:
        """find_message for an id the session gives a message it inherits: the partition of its
        lineage that holds the position, read with one GetItem."""
        position = keys.inherited_position(session["id"], message_id)
        part = lineage.part_of(session, position) if position else None
        if part is None or part.own or is_hidden(position, hidden_ranges(session)):
            return session, None, None
        item = self.client.get_item(
            TableName=self.table,
            Key=key(keys.record_pk(developer, "session", part.partition), position),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return session, None, None
        return session, position, {**deserialize(item), "id": message_id}

    def remove_messages(
        self,
        developer: str,
        session: SessionRecord,
        positions: list[str],
        change: HistoryChange,
        hidden: list[tuple[str, str]] = (),
    ) -> None:
        """Delete messages (one, or an assistant message with the tool results that answered it),
        and add the `hidden` ranges ((after, through) each) for those another session reads
        (lineage.shared), and record the change on the session in the same transaction
        (`_history_changed`). Only while the session is as read: else VersionConflict; a message
        already gone, MissingRecord."""
        session_pk = keys.record_pk(developer, "session", session["id"])
        hide = [(secrets.token_hex(6), after, through) for after, through in hidden]
        changed = self._history_changed(developer, session, change, hide)
        transaction = Transaction().extend(changed)
        for position in positions:
            transaction.add(
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": key(session_pk, position),
                        "ConditionExpression": "attribute_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": PK},
                    }
                },
                if_failed=MissingRecord("message", position),
            )
        self._run(transaction)

    def start_rewind(
        self,
        developer: str,
        session: SessionRecord,
        after: tuple[str, str],
        through: str,
        change: HistoryChange,
    ) -> tuple[str, list[str]]:
        """Remove every message after `after` ((position, id); (BEFORE_ANY_MESSAGE, "") for all
        of them, a clear) up to `through` (the newest position when it begins; what is appended
        later stays). In one transaction the session records `change` (its last message: the
        one at `after`) and hides the range from every read at once (HIDDEN),
        the message is checked to exist, and a marker (purge kind "history") says what is left to
        delete, for the stream, a retry or the operators' sweep (delete_history_batch,
        finish_hidden). When the range reaches into what the session inherits (a fork's rewind
        or clear), its lineage is cut at `after` and its references move with it: the one in each
        partition it still reads says how far, those it no longer reads go, and the marker names
        those partitions (`tidy`: what only this fork kept there can go). The range's id and those
        partitions; VersionConflict if the session changed, MissingRecord if the message went."""
        range_id = secrets.token_hex(6)
        marker: Item = {"after": after[0], "through": through, "after_id": after[1], "range": range_id}
        if session.get(FORKED_THROUGH):  # how far forks made before it read: their part stays
            marker[FORKED_THROUGH] = session[FORKED_THROUGH]
        cut = lineage.cut_at(session, after[0])
        references: list[dict[str, Any]] = []
        if cut is not None:
            still_read = dict(cut)
            marker["tidy"] = [source for source, _ in lineage.lineage(session)]
            for source in marker["tidy"]:
                ref_key = key(keys.record_pk(developer, "session", source), keys.fork_ref_sk(session["id"]))
                if source in still_read:
                    references.append(self._put({**ref_key, "through": {"S": still_read[source]}}))
                else:
                    references.append(self._delete(ref_key))
        changed = self._history_changed(developer, session, change, [(range_id, after[0], through)], cut)
        transaction = Transaction().extend(changed)
        if after[0] != BEFORE_ANY_MESSAGE:
            transaction.add(
                {
                    "ConditionCheck": {  # in the partition that holds it (an inherited one: its source's)
                        "TableName": self.table,
                        "Key": key(keys.record_pk(developer, "session", holder_of(session, after[0])), after[0]),
                        "ConditionExpression": "attribute_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": PK},
                    }
                },
                if_failed=MissingRecord("message", after[1]),
            )
        transaction.add(
            self._put(
                {
                    **key(keys.purge_pk(developer), keys.purge_sk(REWIND, f"{session['id']}#{range_id}")),
                    **serialize(marker),
                }
            )
        )
        self._run(transaction.extend(references))
        return range_id, marker.get("tidy", [])

    def finish_hidden(self, developer: str, session_id: str, range_id: str) -> None:
        """A hidden range's messages are all deleted: the range leaves the session record (if it
        is still there: a later rewind that covers it, or a delete of the session, took it)."""
        self._update_session(
            developer,
            session_id,
            "REMOVE #hidden.#range",
            "attribute_exists(#hidden.#range)",
            {"#hidden": HIDDEN, "#range": range_id},
            {},
        )

    def put_messages(self, developer: str, session_id: str, positioned: list[tuple[str, Item]]) -> None:
        """Write messages at their positions, 25 a call: a fork's copy, into a partition no one
        else writes until the fork's session exists (not conditional, not atomic)."""
        pk = keys.record_pk(developer, "session", session_id)
        self._batch_write([{"PutRequest": {"Item": {**key(pk, p), **serialize(m)}}} for p, m in positioned])

    def _history_changed(
        self,
        developer: str,
        session: SessionRecord,
        change: HistoryChange,
        hide: list[tuple[str, str, str]] = (),
        lineage_to: list[list[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """The actions that record `change` on its session, if the session is still as read (a
        removed summary comes with a new version, so no summary computed before is written over
        it); `hide` ((range id, after, through) each) adds HIDDEN ranges, dropping those they
        cover; `lineage_to`, when given, becomes its LINEAGE (a rewind into what it inherits)."""
        updated_at, terms, last_message_id = change.updated_at, change.terms, change.last_message_id
        clear_summary, open_calls = change.clear_summary, change.open_calls
        # (placeholders apart from _still's, which names the values as read)
        sets, names, values = ["#updated = :now"], {"#updated": "updated_at"}, {":now": {"S": updated_at}}
        removes: list[str] = []
        if last_message_id is not None:
            sets.append("#last_id = :last_id")
            names["#last_id"] = LAST_MESSAGE_ID
            values[":last_id"] = {"S": last_message_id}
        if open_calls is not None:
            sets.append("#open = :open")
            names["#open"] = OPEN_CALLS
            values[":open"] = codec.value(open_calls)
        if clear_summary:
            sets.append("#version = :next")
            removes += ["#summary", "#until"]
            names.update({"#version": "version", "#summary": "summary", "#until": SUMMARY_UNTIL})
            values[":next"] = {"N": str(session["version"] + 1)}
        if hide:
            names["#hidden"] = HIDDEN
            if HIDDEN in session:  # the map is there (an empty one stays after its last range went)
                covered = {
                    rid
                    for rid, (a, t) in session[HIDDEN].items()
                    for _, after, through in hide
                    if after <= a and t <= through
                }
                for n, (range_id, after, through) in enumerate(hide):
                    sets.append(f"#hidden.#range{n} = :range{n}")
                    names[f"#range{n}"] = range_id
                    values[f":range{n}"] = codec.value([after, through])
                for n, rid in enumerate(sorted(covered)):
                    removes.append(f"#hidden.#covered{n}")
                    names[f"#covered{n}"] = rid
            else:
                sets.append("#hidden = :hidden")
                values[":hidden"] = codec.value({range_id: [after, through] for range_id, after, through in hide})
        if lineage_to is not None:
            sets.append("#lineage = :lineage")
            names["#lineage"] = LINEAGE
            values[":lineage"] = codec.value(lineage_to)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        still = still_as_read(session)
        session_key = key(keys.record_pk(developer, "session", session["id"]), RECORD)
        return [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": session_key,
                    "UpdateExpression": expression,
                    "ConditionExpression": still["ConditionExpression"],
                    "ExpressionAttributeNames": {**still["ExpressionAttributeNames"], **names},
                    "ExpressionAttributeValues": {**still["ExpressionAttributeValues"], **values},
                }
            },
            *(self._delete(key(*k)) for k in keys.update_order_keys(developer, "session", session, terms)),
            *(
                self._put(index_entry(k, session))
                for k in keys.update_order_keys(developer, "session", {**session, "updated_at": updated_at}, terms)
            ),
        ]

    def newest_message(
        self, developer: str, session: SessionRecord, before: str | None = None
    ) -> tuple[str, str] | None:
        """(position, id) of the session's newest visible message, or of the newest one before the
        position `before`; None when there is none."""
        for position, message in self.visible_messages(developer, session, descending=True, after=before, page_size=1):
            return position, message["id"]
        return None

    def visible_messages(
        self,
        developer: str,
        session: SessionRecord,
        descending: bool = False,
        after: str | None = None,
        page_size: int = 100,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """A session's history as every request sees it, as (position, message), oldest first (or
        newest first), strictly past the position `after`, read page by page as the caller consumes
        them: what it inherits read in place from each partition of its lineage (with its own ids
        for those messages), then its own; none in its hidden ranges, which are stepped over (one
        Query per stretch between them, never a page of what they hide)."""
        ranges = hidden_ranges(session)
        sizes = doubling(page_size + (after is not None), 1000)
        views = parts(session)
        for part in reversed(views) if descending else views:
            low, high = part.low, part.high
            if after is not None:
                low, high = (low, min(high, after)) if descending else (max(low, after), high)
            if low >= high:
                continue
            for position, item in self._span_items(developer, part.partition, low, high, ranges, descending, sizes):
                if position == after or position <= part.low or is_hidden(position, ranges):
                    continue
                message = deserialize(item)
                if not part.own:
                    message["id"] = keys.inherited_id(session["id"], position)
                yield position, message

    def messages(
        self, developer: str, session_id: str, descending: bool = False, after: str | None = None, page_size: int = 100
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The message items of one session's partition as stored, as (position, message) (an
        operator's and a test's view: requests read `visible_messages`)."""
        low, high = (MESSAGE_PREFIX, keys.MESSAGES_END)
        if after is not None:
            low, high = (low, after) if descending else (after, high)
        sizes = doubling(page_size + (after is not None), 1000)
        for position, item in self._span_items(developer, session_id, low, high, [], descending, sizes):
            if position != after:
                yield position, deserialize(item)

    def _span_items(
        self,
        developer: str,
        partition: str,
        low: str,
        high: str,
        ranges: list[tuple[str, str]],
        descending: bool,
        sizes: Iterator[int],
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(position, raw item) of a session partition's messages from `low` to `high` (both
        inclusive), one Query per stretch between the hidden `ranges`."""
        spans = lineage.visible_spans(low, high, ranges)
        for span_low, span_high in reversed(spans) if descending else spans:
            args = self._query_args(keys.record_pk(developer, "session", partition), descending=descending)
            # BETWEEN keeps the range inside the messages (never the session's own item)
            args["KeyConditionExpression"] += " AND #sk BETWEEN :low AND :high"
            args["ExpressionAttributeNames"]["#sk"] = SK
            args["ExpressionAttributeValues"].update({":low": {"S": span_low}, ":high": {"S": span_high}})
            for answer in self._pages("query", args, lambda: next(sizes)):
                for item in answer["Items"]:
                    yield item[SK]["S"], item

    def write_summary(
        self, developer: str, session_id: str, version: int, summary: str | None, until: str | None
    ) -> bool:
        """Set the session's summary (and the position of the last message it covers) if the
        session is still at `version`; bumps the version so no read-modify-write that started
        earlier can overwrite it. False when the session changed meanwhile (or is gone)."""
        return self._update_session(
            developer,
            session_id,
            "SET #summary = :summary, #until = :until, #version = :next",
            "#version = :version",
            {"#summary": "summary", "#until": SUMMARY_UNTIL, "#version": "version"},
            {
                ":summary": codec.value(summary),
                ":until": codec.value(until),
                ":version": {"N": str(version)},
                ":next": {"N": str(version + 1)},
            },
        )

    def _update_session(
        self, developer: str, session_id: str, expression: str, condition: str, names: dict, values: dict
    ) -> bool:
        """One conditional UpdateItem of a session record; False when the condition failed."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=record_key(developer, "session", session_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
