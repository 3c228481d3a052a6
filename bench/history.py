"""Benchmark: conversation history, ours (one item per message) against langchain-community's
`DynamoDBChatMessageHistory` (a session's whole history as a list inside one item).

    make bench                                   # after bench.lists; installs langchain-community
    .venv/bin/python -m bench.history            # N = 10, 100 and 1,000 messages
    .venv/bin/python -m bench.history --quick    # N = 10 and 100
    .venv/bin/python -m bench.history --sizes 10,100,1000 --reps 7

Everything runs in-process on moto (`moto.mock_aws`), never on AWS. For every N, both designs get
a session whose history already holds N messages, and, in the same run, the benchmark measures:

- one append of one message (the same ~500-byte user message at every N, for both designs):
  what it has to read first (items, bytes, RCU), what it writes (items, bytes, WCU), its DynamoDB
  calls, and the median wall time of a few repetitions (each repetition appends one more message);
- reading the last 20 messages: ours `history.get(store, developer, session_id,
  HistoryQuery(limit=20, order="desc"))`, theirs the `.messages` property (the whole item), then its
  last 20; both answers are checked against what was seeded.

Content is realistic text, 400 to 600 bytes a message, from a seeded random, and the same for
both designs. A message's text is a function of its distance from the newest message, so every
history, whatever its N, ends with the same messages: an append reads the same newest message and
the last 20 are the same 20 at every N (10 messages at N = 10), and any difference in cost comes
from N alone.

Seeding: ours through `history.append_messages` in appends of 50 (the API's maximum), after the
agent, user and session are made through `records.create` in a table built from chalicelib.store.schema;
theirs through `add_messages` in batches of 50, in its own table keyed by `SessionId` as langchain
expects. When langchain's item would pass DynamoDB's 400 KB item limit, its UpdateItem is refused
(ValidationException "Item size to update has exceeded the maximum allowed size"); the benchmark
then adds smaller and smaller batches, down to one message, to find exactly how many messages the
item holds, records it, and measures both designs once more just below that limit, so the growth
of langchain's costs is seen where it matters most.

The item limit: moto's own check is wrong for langchain's writes. It adds the value an UpdateItem
replaces to the new one (LimitedSizeDict.__setitem__ in moto/dynamodb/models/dynamo_type.py), so
an item rewritten whole is refused at about 200 KB. The measurements run inside
`dynamodb_item_limit()`, which makes moto size the item as it will be after the write, by
DynamoDB's rules, against 400 KB (409,600 bytes); then, on plain moto, the benchmark seeds one
more langchain history to record where stock moto refuses it, and reports both.

How it counts: bench/meter.py, as for bench/lists.py (its module docstring and docs/performance.md
say how RCU and WCU are worked out), except that item sizes here follow DynamoDB's documented
rules (`meter.dynamodb_item_size`: strings their bytes, no quotes; lists and maps 3 bytes plus 1
per element) rather than the JSON-text approximation, which overcounts langchain's nested maps by
about 6%, enough to put a legal item "over" 400 KB. "Bytes read" is the size of the items read
(whole items, whatever a projection keeps); "items read" of an append is what it reads before it
writes (its read cost is worked out just before the write is sent, so re-sent projected queries
see the table as the append saw it). Condition checks are counted apart, not in the WCU, as in
the lists benchmark.

Metering langchain: `DynamoDBChatMessageHistory` builds its own boto3 *resource* and uses
`self.table` (a `Table` resource: get_item, update_item, delete_item) for every call. The
benchmark builds the history object, then replaces its `table` with a `Table` of one shared
resource whose low-level client is watched by the Meter (`meter.watch`): botocore event hooks that
record each call after boto3 has turned Python values into DynamoDB's typed JSON and its answer
before boto3 turns it back, i.e. exactly the requests and answers on the wire. langchain's code
runs unchanged; only the object it calls through is ours, and it is a plain boto3 Table.

Our appends run in moto's TransactWriteItems with its whole-table rollback snapshot turned off
(bench.lists.moto_transactions_without_snapshot: moto deep-copies every table before each
transaction, which real DynamoDB does not); moto still checks every condition, and the run stops
if any transaction is cancelled.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

# Never talk to real AWS: fake credentials, no endpoint override, before boto3 is imported.
for _name in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
)
# history.get signs a cursor; a fixed secret keeps the service from warning that it made one up.
os.environ.setdefault("SESSIONS_CURSOR_SECRET", "bench-history-not-a-secret")

import boto3  # noqa: E402
from boto3.dynamodb.types import TypeSerializer  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib import store  # noqa: E402
from chalicelib.rules import history, kinds, records  # noqa: E402
from chalicelib.store import schema  # noqa: E402

from .lists import _GuardedClient, moto_transactions_without_snapshot  # noqa: E402
from .meter import (  # noqa: E402
    KEY_NAMES,
    WRITE_OPS,
    Meter,
    ReadCost,
    Tally,
    count,
    dynamodb_item_size,
    read_cost,
    sizing,
    value_size,
    watch,
    write_cost,
)
from .report import log, publish, update_doc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "history.json"
BEGIN, END = "<!-- history:begin -->", "<!-- history:end -->"

REGION = "us-east-1"
DEVELOPER = "bench-dev-1"
DEFAULT_SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
LAST = 20  # "the last 20 messages"
BATCH = 50  # messages per seeding append (our API's maximum per append)
SEED = 20261125
FLAT = 1.1  # ours: at the largest N at most 1.1 x the cost at the smallest
THEIR_KEY = "SessionId"  # langchain's default partition key
DESIGNS = ("ours", "langchain")
SITUATION = (
    "You are Sara, a patient running coach. The user is training for a first half "
    "marathon; keep answers short, ask about sleep and injuries, and never give medical "
    "advice beyond suggesting a doctor. "
)

# --- message content --------------------------------------------------------------------------

_OPENERS = [
    "Thanks for the update",
    "That sounds like a solid week",
    "Good question",
    "I hear you",
    "Nice work on the long run",
    "Let's look at this together",
    "Before we change anything",
    "Honestly",
    "Quick check-in",
    "Here is what I would do",
]
_WORDS = (
    "run runs running pace easy tempo interval long recovery rest day week weeks plan "
    "mileage kilometres miles heart rate zone two three sleep hours legs calves knee shin "
    "hip stretch foam roll strength core hills track trail shoes cadence stride breathing "
    "fuel gel water electrolytes breakfast race half marathon finish goal time minutes "
    "split warm cool down taper build base effort feel tired fresh sore tight strong "
    "steady slow faster Saturday Sunday Tuesday Thursday morning evening coach schedule "
    "injury doctor physio caution progress consistent target weather heat rain wind"
).split()


def content_for_age(age: int) -> str:
    """The text of the message `age` places before the newest (0 is the newest): 400 to 600
    bytes of plain sentences, the same on every run and for both designs."""
    rng = random.Random(f"{SEED}:{age}")
    target = rng.randint(400, 600)
    sentences = [rng.choice(_OPENERS) + "."]
    while sum(len(s) + 1 for s in sentences) < target:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
        sentences.append(" ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!"]))
    return " ".join(sentences)[:target].rstrip()


def role_for_age(age: int) -> str:
    return "assistant" if age % 2 == 0 else "user"  # the newest is the coach's answer


def history_messages(n: int) -> list[dict[str, Any]]:
    """A history of n messages, oldest first."""
    return [{"role": role_for_age(age), "content": content_for_age(age), "name": None} for age in range(n - 1, -1, -1)]


PROBE = {"role": "user", "name": None, "content": content_for_age(-1)}  # what every append adds


# --- item size and limit by DynamoDB's rules ------------------------------------------------------

ITEM_LIMIT = 400 * 1024  # DynamoDB's maximum item size, 400 KB


def moto_item_size(item: dict[str, Any] | None) -> int:
    """Size of an item by moto's own count (strings and keys only, no per-element overhead)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    return sum(len(name.encode()) + DynamoType(v).size() for name, v in (item or {}).items())


@contextmanager
def dynamodb_item_limit() -> Iterator[bool]:
    """Hold items to DynamoDB's limit, not to moto's miscount of it. moto checks the size in
    LimitedSizeDict.__setitem__ (moto/dynamodb/models/dynamo_type.py), adding the new value to
    every value already in the item, *including the one it replaces*, against 405,000 bytes. An
    UpdateItem that rewrites an attribute is therefore refused once old + new pass 405,000, i.e.
    when the item is about 200 KB: exactly langchain's case (SET History = the whole list). Inside
    this context the check sizes the item as it will be after the write (the replaced value left
    out) by DynamoDB's rules and refuses it above 400 KB, raising moto's own ItemSizeTooLarge (a
    ValidationException, as before). Yields whether the patch is in place."""
    try:
        from moto.dynamodb.exceptions import ItemSizeTooLarge
        from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    except ImportError:
        yield False
        return
    original = LimitedSizeDict.__dict__.get("__setitem__")
    if original is None:
        yield False
        return

    def child(value: Any) -> tuple[str, Any]:
        return value.type, value.value

    def size(value: Any) -> int:
        if isinstance(value, DynamoType):
            return value_size(value.type, value.value, child)
        return len(str(value).encode())  # as moto sizes what is not a DynamoType

    def setitem(self: Any, key: str, value: Any) -> None:
        others = sum(len(k.encode()) + size(v) for k, v in self.items() if k != key)
        if others + len(key.encode()) + size(value) > ITEM_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    LimitedSizeDict.__setitem__ = setitem
    try:
        yield True
    finally:
        LimitedSizeDict.__setitem__ = original


# --- the two designs -----------------------------------------------------------------------------


class Ours:
    """chalicelib.rules.history on a table from chalicelib.store.schema."""

    name = "ours"

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.store = bench.store
        self.agent = records.create(
            self.store,
            kinds.AGENTS,
            DEVELOPER,
            kinds.AGENTS.create_model.model_validate({"name": "Sara", "about": "A running coach"}),
        ).id
        self.user = records.create(
            self.store,
            kinds.USERS,
            DEVELOPER,
            kinds.USERS.create_model.model_validate({"name": "Ann", "about": "Training for a half marathon"}),
        ).id

    def new_session(self, n: int) -> str:
        return records.create(
            self.store,
            kinds.SESSIONS,
            DEVELOPER,
            kinds.SESSIONS.create_model.model_validate(
                {
                    "agent_id": self.agent,
                    "user_id": self.user,
                    "situation": SITUATION,
                    "metadata": {"bench": f"history-{n}"},
                }
            ),
        ).id

    def append(self, session: str, messages: list[dict[str, Any]]) -> None:
        history.append_messages(self.store, DEVELOPER, session, messages)

    def last(self, session: str) -> list[tuple[str, str]]:
        """The last 20, newest first, as (role, content)."""
        page = history.get(self.store, DEVELOPER, session, history.HistoryQuery(limit=LAST, order="desc"))
        return [(m.role, m.content) for m in page["items"]]


class Langchain:
    """langchain-community's DynamoDBChatMessageHistory, in its own table keyed by SessionId."""

    name = "langchain"

    def __init__(self, bench: Bench) -> None:
        # Imported here so that bench.history imports without langchain (make bench installs it).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from langchain_community.chat_message_histories import DynamoDBChatMessageHistory
            from langchain_core.messages import AIMessage, HumanMessage, messages_to_dict
        self.warnings = sorted(
            {
                str(w.message)
                for w in caught
                if issubclass(w.category, DeprecationWarning) and "langchain" in str(w.message)
            }
        )

        self._history_class = DynamoDBChatMessageHistory
        self._kinds = {"user": HumanMessage, "assistant": AIMessage}
        self._to_dict = messages_to_dict
        self.bench = bench
        self.table_name = f"bench-langchain-{uuid.uuid4().hex[:8]}"
        bench.raw.create_table(
            TableName=self.table_name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": THEIR_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": THEIR_KEY, "KeyType": "HASH"}],
        )
        bench.raw.get_waiter("table_exists").wait(TableName=self.table_name, WaiterConfig={"Delay": 1})
        KEY_NAMES[self.table_name] = (THEIR_KEY,)
        self.boto3_session = boto3.Session(region_name=REGION)
        resource = self.boto3_session.resource("dynamodb")
        watch(bench.meter, resource.meta.client)  # see the module docstring
        self.table = resource.Table(self.table_name)
        self.histories: dict[str, Any] = {}

    def close(self) -> None:
        self.bench.raw.delete_table(TableName=self.table_name)

    def new_session(self, n: int) -> str:
        session = f"history-{n}-{uuid.uuid4()}"
        handle = self._history_class(table_name=self.table_name, session_id=session, boto3_session=self.boto3_session)
        handle.table = self.table  # the same Table, on the watched client
        self.histories[session] = handle
        return session

    def message(self, m: dict[str, Any]) -> Any:
        return self._kinds[m["role"]](content=m["content"])

    def append(self, session: str, messages: list[dict[str, Any]]) -> None:
        self.histories[session].add_messages([self.message(m) for m in messages])

    def last(self, session: str) -> list[tuple[str, str]]:
        roles = {"human": "user", "ai": "assistant"}
        return [(roles[m.type], m.content) for m in reversed(self.histories[session].messages[-LAST:])]

    def item(self, session: str) -> dict[str, Any] | None:
        return self.bench.raw.get_item(
            TableName=self.table_name, Key={THEIR_KEY: {"S": session}}, ConsistentRead=True
        ).get("Item")

    def item_after(self, session: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The item langchain's add_messages would write: the stored list plus these messages."""
        stored = (self.item(session) or {}).get("History", {"L": []})["L"]
        added = [TypeSerializer().serialize(d) for d in self._to_dict([self.message(m) for m in messages])]
        return {THEIR_KEY: {"S": session}, "History": {"L": stored + added}}


def _too_large(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationException" and "size" in error.get("Message", "")


# --- the bench --------------------------------------------------------------------------------------


class Bench:
    def __init__(self, raw: Any, reps: int) -> None:
        self.raw = raw
        self.reps = reps
        self.table = f"bench-history-{uuid.uuid4().hex[:8]}"
        schema.create_table(raw, self.table)
        os.environ["SESSIONS_TABLE"] = self.table
        self.meter = Meter(_GuardedClient(raw), on_call=self._on_call)
        self.store = store.Store(self.meter, self.table)
        store.use_store(self.store)
        self._reads: ReadCost | None = None
        self._reads_pending = False

    def _on_call(self, op: str, kwargs: dict[str, Any]) -> None:
        # An append's reads are costed just before its first write, on the table it read.
        if self._reads_pending and op in WRITE_OPS and self.meter.tally is not None:
            self._reads = read_cost(self.raw, list(self.meter.tally.calls))
            self._reads_pending = False

    def close(self) -> None:
        store.use_store(None)
        self.raw.delete_table(TableName=self.table)

    def seed(self, design: Any, session: str, n: int) -> dict[str, Any]:
        """Append the n messages of history_messages(n) in batches. For langchain, when a batch
        is refused for the item's size, continue one message at a time to find how many fit."""
        messages = history_messages(n)
        started = time.perf_counter()
        done = 0
        step = max(BATCH, (n // 5) // BATCH * BATCH)
        failure = None
        while done < n:
            batch = messages[done : done + BATCH]
            try:
                design.append(session, batch)
            except ClientError as exc:
                if design.name != "langchain" or not _too_large(exc):
                    raise
                failure = self.limit(design, session, messages, done, exc)
                done = failure["messages_held"]
                break
            done += len(batch)
            if done % step == 0 and done < n:
                log(f"    {design.name}: seeded {done:,}/{n:,} messages in {time.perf_counter() - started:.1f} s")
        seconds = time.perf_counter() - started
        return {"messages": done, "seconds": round(seconds, 2), "failure": failure}

    def limit(
        self, design: Langchain, session: str, messages: list[dict[str, Any]], done: int, first: ClientError
    ) -> dict[str, Any]:
        """The session holds `done` messages and the next batch was refused: add smaller and
        smaller batches until a single message is refused. A refused write changes nothing."""
        log(
            f"    langchain: the append of messages {done + 1:,}..{min(done + BATCH, len(messages)):,} "
            f"was refused ({first.response['Error']['Message']}); narrowing down"
        )
        step = BATCH // 2
        while True:
            if done >= len(messages):  # sizes only grow: what was refused cannot fit later
                raise RuntimeError("every message fit after a batch of them was refused")
            try:
                design.append(session, messages[done : done + step])
                done += step
                continue
            except ClientError as exc:
                if not _too_large(exc):
                    raise
                if step > 1:
                    step //= 2
                    continue
                error = exc
            held = design.item(session)
            refused = design.item_after(session, [messages[done]])
            failure = {
                "messages_held": done,
                "refused_at_message": done + 1,
                "error": f"{error.response['Error']['Code']}: {error.response['Error']['Message']}",
                "operation": error.operation_name,
                "held_item_bytes_dynamodb": dynamodb_item_size(held),
                "held_item_bytes_moto": moto_item_size(held),
                "refused_item_bytes_dynamodb": dynamodb_item_size(refused),
                "refused_item_bytes_moto": moto_item_size(refused),
            }
            log(
                f"    langchain: holds {done:,} messages ({failure['held_item_bytes_dynamodb']:,} bytes "
                f"by DynamoDB's rules); message {done + 1:,} refused ({failure['refused_item_bytes_dynamodb']:,} "
                f"bytes): {failure['error']}"
            )
            return failure

    # measuring -----------------------------------------------------------------------------------

    def _timed(self, run: Callable[[], Any], reps: int) -> list[float]:
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            run()
            times.append(1000 * (time.perf_counter() - started))
        return times

    def measure_read(self, design: Any, session: str, n: int) -> dict[str, Any]:
        tally = Tally()
        self.meter.tally = tally
        try:
            answer = design.last(session)
        finally:
            self.meter.tally = None
        cost = read_cost(self.raw, tally.calls)
        expected = [(role_for_age(age), content_for_age(age)) for age in range(min(LAST, n))]
        times = self._timed(lambda: design.last(session), self.reps)
        return {
            **cost.as_dict(),
            "bytes_read": cost.bytes_read,
            "returned": len(answer),
            "correct": answer == expected,
            "warnings": cost.warnings,
            "reps": len(times),
            "latencies_ms": [round(t, 2) for t in times],
            "latency_ms_median": round(statistics.median(times), 2),
        }

    def measure_append(self, design: Any, session: str) -> dict[str, Any]:
        """One recorded append of PROBE, then timed ones (each adds one more message)."""
        tally = Tally(writes=True)
        self._reads, self._reads_pending = None, True
        self.meter.tally = tally
        try:
            design.append(session, [PROBE])
        finally:
            self.meter.tally = None
            self._reads_pending = False
        written = write_cost(tally.calls)
        reads = self._reads or read_cost(self.raw, [c for c in tally.calls if c.op not in WRITE_OPS])
        times, refused = [], None
        for _ in range(self.reps):
            try:
                times += self._timed(lambda: design.append(session, [PROBE]), 1)
            except ClientError as exc:
                if not _too_large(exc):
                    raise
                refused = f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}"
                break
        return {
            **written.as_dict(),
            "items_read": reads.items_read,
            "bytes_read": reads.bytes_read,
            "rcu": reads.rcu,
            "warnings": reads.warnings,
            "reps": len(times),
            "latencies_ms": [round(t, 2) for t in times],
            "latency_ms_median": round(statistics.median(times), 2) if times else None,
            "timed_append_refused": refused,
        }

    def run(self, design: Any, n: int) -> dict[str, Any]:
        log(f"  {design.name}, {n:,} messages:")
        session = design.new_session(n)
        seeding = self.seed(design, session, n)
        row: dict[str, Any] = {"n": n, "design": design.name, "seeding": seeding, "failure": seeding.pop("failure")}
        if row["failure"] is not None:
            log(f"    {design.name} cannot hold {n:,} messages: measured nothing more at this N")
            return row
        log(f"    seeded {n:,} messages in {seeding['seconds']} s")
        row["read"] = self.measure_read(design, session, n)
        row["append"] = self.measure_append(design, session)
        r, a = row["read"], row["append"]
        log(
            f"    read last {LAST}: {r['calls_total']} calls, {r['items_read']:,} items, "
            f"{r['bytes_read']:,} bytes, {_num(r['rcu'])} RCU, median {r['latency_ms_median']:.1f} ms; "
            f"{'correct' if r['correct'] else 'WRONG ANSWER'}"
        )
        log(
            f"    append: reads {a['items_read']:,} items / {a['bytes_read']:,} bytes / {_num(a['rcu'])} RCU, "
            f"writes {a['items_written']} items / {a['bytes_written']:,} bytes / {a['wcu']} WCU, "
            f"median {_ms(a['latency_ms_median'])}"
        )
        for warning in r["warnings"] + a["warnings"]:
            log(f"    warning: {warning}")
        return row


def near_limit(failures: list[dict[str, Any]], reps: int) -> int | None:
    """A round N just below langchain's limit, with room for the timed appends."""
    if not failures:
        return None
    held = min(f["messages_held"] for f in failures)
    n = (held - reps - 1 - 10) // 50 * 50
    return n if n > 0 else None


# --- report ---------------------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def _calls_text(calls: dict[str, int]) -> str:
    return "(" + ", ".join(f"{op} {count}" for op, count in sorted(calls.items())) + ")"


def targets(rows: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, str]]:
    found = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        found.append({"target": name, "status": "SKIP" if ok is None else "PASS" if ok else "FAIL", "detail": detail})

    by = {(r["n"], r["design"]): r for r in rows}
    for row in rows:
        if "read" in row:
            check(
                f"{row['design']} returns the last {min(LAST, row['n'])} messages, newest first, N={row['n']:,}",
                row["read"]["correct"],
                f"{row['read']['returned']} returned",
            )
    ours = [n for n in sizes if "append" in by.get((n, "ours"), {})]
    small, large = (min(ours), max(ours)) if ours else (None, None)
    for field in ("bytes_written", "items_written", "items_read", "bytes_read"):
        if small is None or small == large:
            check(f"ours: an append costs the same at every N ({field})", None, "needs two sizes")
            continue
        a, b = by[(small, "ours")]["append"][field], by[(large, "ours")]["append"][field]
        check(
            f"ours: an append at N={large:,} costs at most {FLAT}x one at N={small:,} ({field})",
            b <= FLAT * a,
            f"{a:,} -> {b:,}",
        )
    # At N=10 there are only 10 messages to return: reads are compared from the first N with 20.
    # (The append targets compare with N=10: an append reads one message and writes one at any N.)
    full = [n for n in ours if n >= LAST]
    for field in ("calls_total", "items_read", "bytes_read", "rcu"):
        if len(full) < 2:
            check(
                f"ours: reading the last {LAST} costs the same at every N ({field})",
                None,
                f"needs two sizes of at least {LAST} messages",
            )
            continue
        lo, hi = min(full), max(full)
        a, b = by[(lo, "ours")]["read"][field], by[(hi, "ours")]["read"][field]
        check(
            f"ours: reading the last {LAST} at N={hi:,} costs at most {FLAT}x at N={lo:,} ({field})",
            b <= FLAT * a,
            f"{_num(a)} -> {_num(b)} (from N={lo:,}, the first with {LAST} messages to return)",
        )
    return found


def findings(rows: list[dict[str, Any]], stock: dict[str, Any] | None, notes: list[str] = ()) -> list[str]:
    """What is recorded (not targeted) about langchain's design."""
    out = []
    theirs = sorted((r for r in rows if r["design"] == "langchain"), key=lambda r: r["n"])
    for row in theirs:
        f = row["failure"]
        if f is None:
            continue
        out.append(
            f"langchain cannot hold {row['n']:,} messages: its one item held {f['messages_held']:,} messages "
            f"({f['held_item_bytes_dynamodb']:,} bytes by DynamoDB's sizing rules; the limit is "
            f"{ITEM_LIMIT:,}), and the append of message {f['refused_at_message']:,} was refused: "
            f"`{f['operation']}` -> `{f['error']}` (the item would have been "
            f"{f['refused_item_bytes_dynamodb']:,} bytes). Every later append to that session fails the "
            f"same way: the conversation cannot continue without clearing it."
        )
    if stock is not None:
        out.append(
            f"On moto's own item-size check (not corrected) langchain's item is refused much earlier, at "
            f"message {stock['refused_at_message']:,} ({stock['held_item_bytes_dynamodb']:,} bytes held by "
            f"DynamoDB's rules, {stock['held_item_bytes_moto']:,} by moto's count): moto adds the History "
            f"being replaced to the new one ({stock['held_item_bytes_moto']:,} + "
            f"{stock['refused_item_bytes_moto']:,} > 405,000). The figures above use DynamoDB's limit "
            f"instead (see `dynamodb_item_limit` in bench/history.py)."
        )
    measured = [r for r in theirs if "append" in r]
    if len(measured) >= 2:
        a, b = measured[0], measured[-1]
        ratio = b["n"] / a["n"]
        out.append(
            f"langchain's costs grow with the history: from N={a['n']:,} to N={b['n']:,} ({ratio:g}x the "
            f"messages) one append goes from {a['append']['bytes_written']:,} to {b['append']['bytes_written']:,} "
            f"bytes written ({a['append']['wcu']} -> {b['append']['wcu']} WCU) and from "
            f"{a['append']['bytes_read']:,} to {b['append']['bytes_read']:,} bytes read first; reading the "
            f"last {LAST} goes from {a['read']['bytes_read']:,} to {b['read']['bytes_read']:,} bytes read "
            f"({_num(a['read']['rcu'])} -> {_num(b['read']['rcu'])} RCU, eventually consistent). "
            f"Appending one message rewrites the whole history."
        )
    ours = sorted((r for r in rows if r["design"] == "ours" and "append" in r), key=lambda r: r["n"])
    if measured and ours:
        b = measured[-1]
        mine = next((r for r in ours if r["n"] == b["n"]), None)
        if mine is not None:
            out.append(
                f"At N={b['n']:,}, one append: langchain {b['append']['bytes_written']:,} bytes written "
                f"({b['append']['wcu']} WCU) and {b['append']['bytes_read']:,} read, ours "
                f"{mine['append']['bytes_written']:,} written ({mine['append']['wcu']} WCU) and "
                f"{mine['append']['bytes_read']:,} read."
            )
    if theirs:
        out.append(
            "langchain's append is a read-modify-write without a condition (GetItem, eventually "
            "consistent, then UpdateItem SET History = the whole list): two concurrent appends "
            "to one session can lose one of them. Not measured here; ours makes each message a "
            "conditional Put of its own key."
        )
    out += [f'langchain-community warns on import: "{note}"' for note in notes]
    return out


def markdown(report: dict[str, Any]) -> str:
    rows = sorted(report["rows"], key=lambda r: (r["n"], DESIGNS.index(r["design"])))
    out = [
        f"Run of {report['generated_at']} on {report['machine']}: histories of "
        f"{', '.join(f'{n:,}' for n in report['sizes'])} messages"
        + (
            f" (and {report['near_limit']:,}, just below the {report['langchain_limit']:,} messages "
            f"langchain's one item can hold)"
            if report.get("near_limit")
            else ""
        )
        + f", {report['message_bytes']['min']}-{report['message_bytes']['max']} bytes of text a message "
        f"(mean {report['message_bytes']['mean']:.0f}); every append adds one {report['probe_bytes']}-byte "
        f"message. Time is the median of {report['reps']} timed runs. Whole run "
        f"{report['total_seconds']:.0f} s.",
        "",
        "### One append to a history of N messages",
        "",
        "| N | design | DynamoDB calls | items read | bytes read | RCU | items written | bytes written "
        "| WCU | condition checks | time on moto (runs) |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "append" not in row:
            f = row["failure"]
            out.append(
                f"| {row['n']:,} | {row['design']} | cannot hold {row['n']:,} messages: refused at "
                f"message {f['refused_at_message']:,} (item over 400 KB) | | | | | | | | |"
            )
            continue
        a = row["append"]
        out.append(
            f"| {row['n']:,} | {row['design']} | {a['calls_total']} {_calls_text(a['calls'])} | "
            f"{a['items_read']:,} | {a['bytes_read']:,} | {_num(a['rcu'])} | {a['items_written']:,} | "
            f"{a['bytes_written']:,} | {a['wcu']:,} | {a['condition_checks']} | "
            f"{_ms(a['latency_ms_median'])} ({a['reps']}) |"
        )
    out += [
        "",
        f"### Reading the last {LAST} messages",
        "",
        "| N | design | DynamoDB calls | items read | bytes read | RCU | messages returned | time on moto (runs) |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "read" not in row:
            out.append(f"| {row['n']:,} | {row['design']} | cannot hold {row['n']:,} messages | | | | | |")
            continue
        r = row["read"]
        out.append(
            f"| {row['n']:,} | {row['design']} | {r['calls_total']} {_calls_text(r['calls'])} | "
            f"{r['items_read']:,} | {r['bytes_read']:,} | {_num(r['rcu'])} | {r['returned']} | "
            f"{_ms(r['latency_ms_median'])} ({r['reps']}) |"
        )
    out += [
        "",
        "Time is reported, not targeted: moto's Query sorts the whole table on every call "
        "(`all_items()` in `moto/dynamodb/models/table.py`), so on moto any query's time grows with "
        "the table whatever the design (ours queries; here all our histories share one table of "
        f"{report['our_table_items']:,} items by the end). langchain's GetItem does not sort, but "
        "its time includes deserializing and re-serializing the whole history in Python. The costs "
        "(items, bytes, capacity units) are what DynamoDB would bill.",
        "",
        "### Targets",
        "",
    ]
    out += [f"- **{t['status']}** {t['target']}: {t['detail']}" for t in report["targets"]]
    out += ["", "### langchain's one-item history (recorded, not targeted)", ""]
    out += [f"- {line}" for line in report["findings"]] or ["- nothing failed"]
    out += ["", "### Seeding", ""]
    for row in rows:
        s = row["seeding"]
        how = "`history.append_messages`" if row["design"] == "ours" else "`add_messages`"
        tail = ", then smaller ones to find the limit" if row["failure"] else ""
        out.append(
            f"- {row['design']}, N = {row['n']:,}: {s['messages']:,} messages through {how} in "
            f"batches of {BATCH}{tail}, {s['seconds']} s."
        )
    return "\n".join(out)


HEADING = """## Conversation history

Figures from `make bench` (`bench/history.py`; alone: `.venv/bin/python -m bench.history`, or
`--quick` for 10 and 100 messages): what one append and a read of the last 20 messages cost when
the history already holds N messages, for our design (one item per message in the session's
partition: an append reads its session and writes the new message with the session's activity:
its updated_at and last position, and its three update-order index entries moved) next to
langchain-community's `DynamoDBChatMessageHistory` (the whole history as a list in one item: an
append reads the item and writes all of it back, and the item cannot pass DynamoDB's 400 KB
limit). Both run on the same moto with the same message texts and the same meter as above, with
two differences, both explained in the module docstring of `bench/history.py`: item sizes follow
DynamoDB's documented rules (no JSON quotes; 3 bytes a list or map plus 1 an element), and moto's
item-size check is corrected for the run, because stock moto counts the value an UpdateItem
replaces as well as the new one and so refuses langchain's item at about 200 KB (where stock moto
refuses it is recorded too). langchain's calls are recorded on the wire through botocore event
hooks on the client under its boto3 resource. Saved in `bench/results/history.json`.

"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 10 and 100 only")
    parser.add_argument("--sizes", help="comma-separated message counts (default: BENCH_HISTORY_SIZES or 10,100,1000)")
    parser.add_argument(
        "--reps",
        type=int,
        default=int(os.environ.get("BENCH_REPS", "7")),
        help="timed repetitions per measurement (default 7)",
    )
    args = parser.parse_args(argv)
    text = (
        ",".join(map(str, QUICK_SIZES))
        if args.quick
        else args.sizes or os.environ.get("BENCH_HISTORY_SIZES") or ",".join(map(str, DEFAULT_SIZES))
    )
    args.sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    if any(n < 1 for n in args.sizes) or args.reps < 1:
        parser.error("sizes and --reps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    log(f"bench.history: N = {', '.join(f'{n:,}' for n in args.sizes)} messages; {args.reps} timed repetitions")
    rows: list[dict[str, Any]] = []
    with mock_aws(), moto_transactions_without_snapshot() as fast, sizing(dynamodb_item_size):
        if not fast:
            log("  warning: could not skip moto's per-transaction table snapshot; appends will be slow")
        raw = boto3.client("dynamodb", region_name=REGION)
        bench = Bench(raw, args.reps)
        theirs = Langchain(bench)
        ours = Ours(bench)
        stock = None
        try:
            with dynamodb_item_limit() as limited:
                if not limited:
                    log(
                        "  warning: could not correct moto's item-size check; langchain's item will be "
                        "refused at about half of DynamoDB's 400 KB"
                    )
                for n in args.sizes:
                    rows.append(bench.run(theirs, n))
                extra = near_limit([r["failure"] for r in rows if r["failure"]], args.reps)
                if extra is not None and extra not in args.sizes:
                    log(f"\n  just below langchain's limit, N = {extra:,}:")
                    rows.append(bench.run(theirs, extra))
                for n in sorted(set(args.sizes) | ({extra} if extra else set())):
                    rows.append(bench.run(ours, n))
                our_items = count(raw, "scan", {"TableName": bench.table})
            if limited and any(r["failure"] for r in rows):
                n = max(args.sizes)
                log(f"\n  langchain on moto's own item-size check, {n:,} messages:")
                session = theirs.new_session(n)
                stock = bench.seed(theirs, session, n)["failure"]
        finally:
            theirs.close()
            bench.close()
    import moto

    lengths = [len(content_for_age(age).encode()) for age in range(max(args.sizes))]
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": (
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, moto {moto.__version__}, "
            f"langchain-community {package_metadata.version('langchain-community')}, "
            f"langchain-core {package_metadata.version('langchain-core')}"
        ),
        "langchain_warnings": theirs.warnings,
        "item_limit": ITEM_LIMIT,
        "langchain_limit": min((r["failure"]["messages_held"] for r in rows if r["failure"]), default=None),
        "item_limit_corrected": limited,
        "stock_moto_failure": stock,
        "sizes": args.sizes,
        "near_limit": extra,
        "reps": args.reps,
        "last": LAST,
        "message_bytes": {"min": min(lengths), "max": max(lengths), "mean": statistics.mean(lengths)},
        "probe_bytes": len(PROBE["content"].encode()),
        "our_table_items": our_items,
        "rows": sorted(rows, key=lambda r: (r["n"], DESIGNS.index(r["design"]))),
    }
    report["targets"] = targets(report["rows"], sorted(set(args.sizes) | ({extra} if extra else set())))
    report["findings"] = findings(report["rows"], stock, report["langchain_warnings"])
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    block = markdown(report)
    update_doc(block, BEGIN, END, heading=HEADING)
    publish(report, block, RESULTS, "history figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
