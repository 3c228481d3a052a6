"""Benchmark: what a filtered list of sessions reads, against a naive full-table Scan.

    make bench                              # N = 1,000 and 10,000
    BENCH_SIZES=1000 make bench             # or: .venv/bin/python -m bench.lists --quick
    .venv/bin/python -m bench.lists --sizes 1000,10000 --reps 5

For every N it makes a fresh moto table (from chalicelib.store.schema), seeds N sessions for two
developers through `records.create`, then for each filter compares, in the same run:

- ours: `lists.list_records(store, SESSIONS, developer, parameters.read(...))` of
  `{"metadata_filter": ..., "limit": "20"}`;
- baseline: one Scan of the whole table with a FilterExpression, paged through LastEvaluatedKey
  (what Julep did), then sorted like ours.

It counts DynamoDB calls, items read and RCU (bench/meter.py says how), times the median of a few
repetitions, checks both answers against the seeded data, measures what a session create and a
metadata PATCH write, prints a Markdown report, writes bench/results/lists.json and rewrites the
figures section of docs/performance.md. It relies only on records.create / update /
list_records, store.Store and schema, never on the store's keys, so it measures whatever list
design is in place.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Never talk to real AWS: fake credentials, no endpoint override, before boto3 is imported.
for _name in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
)

import boto3  # noqa: E402
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib import store  # noqa: E402
from chalicelib.rules import (  # noqa: E402
    kinds,
    lists,
    parameters,  # noqa: E402
    records,
)
from chalicelib.store import schema  # noqa: E402

from .meter import WRITE_OPS, Meter, Tally, read_cost, write_cost  # noqa: E402
from .report import log, publish, update_doc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "lists.json"
BEGIN, END = "<!-- lists:begin -->", "<!-- lists:end -->"

PAGE = 20
DEVELOPERS = ("bench-dev-1", "bench-dev-2")
PLANS = ("free", "pro", "enterprise")
SITUATION = (
    "You are Sara, a patient running coach. The user is training for a first half "
    "marathon; keep answers short, ask about sleep and injuries, and never give medical "
    "advice beyond suggesting a doctor. "
) * 2
DEFAULT_SIZES = (1000, 10000)
REP_BUDGET_SECONDS = 60.0  # per measurement: no timed repetition that would take the total past this

_serializer, _deserializer = TypeSerializer(), TypeDeserializer()


# --- moto ---------------------------------------------------------------------------------------


@contextmanager
def moto_transactions_without_snapshot() -> Iterator[bool]:
    """moto's TransactWriteItems deep-copies the whole table before every transaction so it can
    roll back (copy.deepcopy in moto/dynamodb/models/__init__.py), which makes seeding quadratic:
    250 creates into a fresh table take ~85 s. Inside this context that snapshot is skipped; moto
    still evaluates every condition and writes every action, only a *failed* transaction would not
    be rolled back, so the Meter aborts the run if any transaction is cancelled. Yields whether
    the shortcut is in place (False with an unexpected moto: then it is just slow)."""
    try:
        from moto.dynamodb import models as moto_models
        from moto.dynamodb.models.table import Table
    except ImportError:
        yield False
        return
    if getattr(moto_models, "copy", None) is not copy:
        yield False
        return

    class _NoTableSnapshot:
        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    moto_models.copy = _NoTableSnapshot()
    try:
        yield True
    finally:
        moto_models.copy = copy


class SortedItemsCache:
    """moto sorts every item of the table on every Query and Scan (Table.all_items), which is
    most of its time on a large table: a 10,000-session Scan takes over a minute. While enabled
    (only for untimed work: recording costs and sizing scanned items), the sorted list is kept
    until the next write through the Meter (Bench._on_call clears it). Timed repetitions always
    run on plain moto."""

    def __init__(self) -> None:
        self._sorted: dict[int, tuple[Any, list[Any]]] = {}
        self._original: Any = None
        self._table_class: Any = None

    def clear(self) -> None:
        self._sorted.clear()

    @contextmanager
    def enabled(self) -> Iterator[None]:
        try:
            from moto.dynamodb.models.table import Table
        except ImportError:
            yield
            return
        original = Table.__dict__.get("all_items")
        if original is None:
            yield
            return
        cache = self._sorted

        def all_items(table: Any) -> list[Any]:
            hit = cache.get(id(table))
            if hit is None or hit[0] is not table:
                hit = cache[id(table)] = (table, original(table))
            return list(hit[1])

        Table.all_items = all_items
        try:
            yield
        finally:
            Table.all_items = original
            self.clear()


class Bench:
    """One table of N seeded sessions, and what is measured on it."""

    def __init__(self, raw_client: Any, n: int, reps: int, sorted_items: SortedItemsCache) -> None:
        self.n = n
        self.reps = reps
        self.table = f"bench-lists-{n}-{uuid.uuid4().hex[:8]}"
        schema.create_table(raw_client, self.table)
        os.environ["SESSIONS_TABLE"] = self.table
        self.raw = raw_client
        self.sorted_items = sorted_items
        self.memo: dict[str, Any] = {}
        self.meter = Meter(_GuardedClient(raw_client), on_call=self._on_call)
        self.store = store.Store(self.meter, self.table)
        store.use_store(self.store)
        self.sessions: dict[str, list[dict[str, Any]]] = {d: [] for d in DEVELOPERS}
        self.rng = random.Random(n)

    def _on_call(self, op: str, kwargs: dict[str, Any]) -> None:
        if op in WRITE_OPS:  # what was cached about the table is stale
            self.sorted_items.clear()
            self.memo.clear()

    def close(self) -> None:
        store.use_store(None)
        self.raw.delete_table(TableName=self.table)

    # seeding -----------------------------------------------------------------------------------

    def metadata(self, index: int, per_developer: int) -> dict[str, Any]:
        """env over everything (2/3 prod), plan one of 3, db_uuid unique, and a tenant shared by
        exactly 10 sessions of each developer (tenants interleave in time: t-<index mod T>)."""
        tenants = max(1, per_developer // 10)
        return {
            "env": "prod" if index % 3 != 2 else "staging",
            "plan": PLANS[(index // 3) % 3],
            "db_uuid": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "tenant": f"t-{index % tenants}",
        }

    def seed(self) -> dict[str, Any]:
        per_developer = self.n // len(DEVELOPERS)
        agents = {
            d: records.create(self.store, kinds.AGENTS, d, kinds.AGENTS.create_model.model_validate({"name": "a"})).id
            for d in DEVELOPERS
        }
        started = time.perf_counter()
        step = max(1, self.n // 10)
        done = 0
        for index in range(per_developer):
            for developer in DEVELOPERS:  # interleaved, as two live developers would be
                metadata = self.metadata(index, per_developer)
                created = records.create(
                    self.store,
                    kinds.SESSIONS,
                    developer,
                    kinds.SESSIONS.create_model.model_validate(
                        {"agent_id": agents[developer], "situation": SITUATION, "metadata": metadata}
                    ),
                )
                self.sessions[developer].append(
                    {"id": created.id, "created_at": created.created_at, "metadata": metadata}
                )
                done += 1
                if done % step == 0:
                    elapsed = time.perf_counter() - started
                    log(
                        f"  seeded {done:,}/{self.n:,} sessions in {elapsed:.1f} s "
                        f"({1000 * elapsed / done:.1f} ms/session)"
                    )
        seconds = time.perf_counter() - started
        return {
            "sessions": done,
            "seconds": round(seconds, 2),
            "ms_per_session": round(1000 * seconds / max(done, 1), 2),
        }

    def expected(self, developer: str, wanted: dict[str, Any]) -> tuple[int, list[str]]:
        """How many of the developer's sessions match, and the first page's ids, newest first."""
        matching = [s for s in self.sessions[developer] if all(s["metadata"].get(k) == v for k, v in wanted.items())]
        matching.sort(key=lambda s: (s["created_at"], s["id"]), reverse=True)
        return len(matching), [s["id"] for s in matching[:PAGE]]

    # the two ways to list ------------------------------------------------------------------------

    def ours(self, developer: str, wanted: dict[str, Any]) -> list[str]:
        params = {"metadata_filter": json.dumps(wanted), "limit": str(PAGE)}  # as the query string says it
        answer = lists.list_records(
            self.store, kinds.SESSIONS, developer, parameters.read(kinds.SESSIONS.list_query, params)
        )
        return [_id_of(item) for item in answer["items"]]

    def baseline(self, developer: str, wanted: dict[str, Any]) -> list[str]:
        """Julep's way: Scan the whole table with a FilterExpression, following LastEvaluatedKey.
        The developer's records are told by the tenancy prefix every key starts with
        (docs/design.md) and the agent_id only a session carries."""
        names = {"#pk": schema.PARTITION_KEY, "#agent": "agent_id", "#md": "metadata"}
        values = {":dev": {"S": f"dev#{developer}#session#"}}
        conditions = ["begins_with(#pk, :dev)", "attribute_exists(#agent)"]
        for position, (key, value) in enumerate(wanted.items()):
            names[f"#k{position}"] = key
            values[f":v{position}"] = _serializer.serialize(value)
            conditions.append(f"#md.#k{position} = :v{position}")
        args: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "FilterExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        records: dict[str, dict[str, Any]] = {}
        while True:
            answer = self.meter.scan(**args)
            for item in answer["Items"]:
                record = {k: _deserializer.deserialize(v) for k, v in item.items()}
                records[record["id"]] = record
            if "LastEvaluatedKey" not in answer:
                break
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        page = sorted(records.values(), key=lambda r: (r["created_at"], r["id"]), reverse=True)[:PAGE]
        return [r["id"] for r in page]

    # measuring -----------------------------------------------------------------------------------

    def measure(self, method: str, developer: str, wanted: dict[str, Any], label: str) -> dict[str, Any]:
        """One recorded run for the costs, then timed repetitions on plain moto. The recorded run
        and the costing (re-sending filtered calls unfiltered) are untimed, so they run with
        moto's sorted item list cached (SortedItemsCache): same answers, much less waiting."""
        run = self.ours if method == "ours" else self.baseline
        tally = Tally()
        with self.sorted_items.enabled():
            self.meter.tally = tally
            try:
                ids = run(developer, wanted)
            finally:
                self.meter.tally = None
            cost = read_cost(self.raw, tally.calls, self.memo)
        for warning in cost.warnings:
            log(f"  warning ({label}): {warning}")
        latencies: list[float] = []
        # Repeat while another run (as long as the last) still fits in the budget; at least one.
        while len(latencies) < self.reps and (
            not latencies or (sum(latencies) + latencies[-1]) / 1000 <= REP_BUDGET_SECONDS
        ):
            started = time.perf_counter()
            again = run(developer, wanted)
            latencies.append(1000 * (time.perf_counter() - started))
            if again != ids:
                raise RuntimeError(f"{label}: a repetition answered differently")
        return {
            **cost.as_dict(),
            "ids": ids,
            "reps": len(latencies),
            "latencies_ms": [round(x, 2) for x in latencies],
            "latency_ms_median": round(statistics.median(latencies), 2),
        }

    def write_costs(self, developer: str) -> list[dict[str, Any]]:
        """Create and PATCH, for a session with several indexed metadata values and one with none.
        Each is done 3 times on fresh sessions; the figures are the median."""
        agent = records.create(
            self.store, kinds.AGENTS, developer, kinds.AGENTS.create_model.model_validate({"name": "a"})
        ).id

        def with_metadata() -> dict[str, Any]:
            return {
                "agent_id": agent,
                "situation": SITUATION,
                "metadata": {"env": "prod", "plan": "pro", "db_uuid": str(uuid.uuid4()), "tenant": "t-bench-writes"},
            }

        def without() -> dict[str, Any]:
            return {"agent_id": agent, "situation": SITUATION}

        cases = [
            ("create session, 4 metadata values", with_metadata, None),
            ("create session, no metadata", without, None),
            ("PATCH metadata env=staging, session with 4 values", with_metadata, {"metadata": {"env": "staging"}}),
            ("PATCH metadata env=staging, session with no metadata", without, {"metadata": {"env": "staging"}}),
        ]
        rows = []
        for name, body, patch in cases:
            samples = []
            for _ in range(3):
                sid = (
                    None
                    if patch is None
                    else records.create(
                        self.store, kinds.SESSIONS, developer, kinds.SESSIONS.create_model.model_validate(body())
                    ).id
                )
                tally = Tally(writes=True)
                self.meter.tally = tally
                try:
                    if patch is None:
                        records.create(
                            self.store, kinds.SESSIONS, developer, kinds.SESSIONS.create_model.model_validate(body())
                        )
                    else:
                        records.update(
                            self.store,
                            kinds.SESSIONS,
                            developer,
                            sid,
                            kinds.SESSIONS.patch_model.model_validate(patch),
                            replace=False,
                        )
                finally:
                    self.meter.tally = None
                samples.append(write_cost(tally.calls).as_dict())
            figures = {
                key: statistics.median(s[key] for s in samples)
                for key in ("calls_total", "items_written", "bytes_written", "wcu", "condition_checks", "items_read")
            }
            rows.append(
                {
                    "n": self.n,
                    "operation": name,
                    "calls": samples[-1]["calls"],
                    **{k: int(v) if float(v).is_integer() else v for k, v in figures.items()},
                    "samples": samples,
                }
            )
            log(
                f"  {name}: {rows[-1]['items_written']} items, {rows[-1]['bytes_written']} bytes written, "
                f"{rows[-1]['wcu']} WCU"
            )
        return rows


class _GuardedClient:
    """The raw client, except that a cancelled transaction stops the benchmark (see
    moto_transactions_without_snapshot: it may have left partial writes)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name != "transact_write_items":
            return attribute

        def transact(**kwargs: Any) -> Any:
            try:
                return attribute(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                    raise SystemExit(
                        f"a transaction was cancelled during the benchmark ({exc}); the seeded table cannot be trusted"
                    ) from None
                raise

        return transact


def _id_of(item: Any) -> str:
    return item["id"] if isinstance(item, dict) else item.id


# --- the run --------------------------------------------------------------------------------------


def filters_for(bench: Bench) -> list[tuple[str, dict[str, Any]]]:
    per_developer = bench.n // len(DEVELOPERS)
    one = bench.sessions[DEVELOPERS[0]][per_developer // 2]["metadata"]["db_uuid"]
    return [
        ("tenant", {"tenant": "t-42"}),
        ("tenant+env", {"tenant": "t-42", "env": "prod"}),
        ("db_uuid", {"db_uuid": one}),
    ]


def run_size(raw: Any, n: int, reps: int) -> dict[str, Any]:
    log(f"\n== N = {n:,} sessions ({n // 2:,} per developer) ==")
    bench = Bench(raw, n, reps, SortedItemsCache())
    try:
        seeding = bench.seed()
        log(
            f"  seeding: {seeding['sessions']:,} sessions in {seeding['seconds']} s "
            f"({seeding['ms_per_session']} ms/session, through records.create)"
        )
        developer = DEVELOPERS[0]
        lists = []
        for name, wanted in filters_for(bench):
            matches, expected = bench.expected(developer, wanted)
            for method in ("ours", "baseline"):
                label = f"N={n:,} {method} {json.dumps(wanted)}"
                log(f"  measuring {label} ({matches} matches) ...")
                result = bench.measure(method, developer, wanted, label)
                correct = result["ids"] == expected
                lists.append(
                    {
                        "n": n,
                        "filter_name": name,
                        "filter": wanted,
                        "matches": matches,
                        "method": method,
                        "returned": len(result["ids"]),
                        "correct": correct,
                        **{k: v for k, v in result.items() if k != "ids"},
                    }
                )
                log(
                    f"    {result['calls_total']} calls {_calls_text(result['calls'])}, "
                    f"{result['items_read']:,} items read, {_num(result['rcu'])} RCU, "
                    f"median {result['latency_ms_median']:.1f} ms over {result['reps']}; "
                    f"{'correct' if correct else 'WRONG ANSWER'}"
                )
        log("  write cost:")
        writes = bench.write_costs(developer)
        return {"seeding": seeding, "lists": lists, "writes": writes}
    finally:
        bench.close()


def _calls_text(calls: dict[str, int]) -> str:
    return "(" + ", ".join(f"{op} {count}" for op, count in sorted(calls.items())) + ")"


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def targets(sizes: list[int], lists: list[dict[str, Any]]) -> list[dict[str, str]]:
    found = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        found.append({"target": name, "status": "SKIP" if ok is None else "PASS" if ok else "FAIL", "detail": detail})

    by = {(r["n"], r["filter_name"], r["method"]): r for r in lists}
    names = list(dict.fromkeys(r["filter_name"] for r in lists))
    for row in lists:
        check(
            f"{row['method']} answers the expected page, N={row['n']:,}, {row['filter_name']}",
            row["correct"],
            f"{row['returned']} of {row['matches']} matches",
        )
    for n in sizes:
        for name in names:
            row = by[(n, name, "ours")]
            bound = 2 * (row["matches"] + PAGE)
            check(
                f"ours reads <= 2 x (matches + page), N={n:,}, {name}",
                row["items_read"] <= bound,
                f"{row['items_read']:,} items read, bound {bound:,}",
            )
    small, large = min(sizes), max(sizes)
    for name in names:
        if small == large:
            check(f"ours at N={large:,} about the same as at the smallest N, {name}", None, "needs two sizes")
            check(f"baseline grows with N, {name}", None, "needs two sizes")
            continue
        ours_small, ours_large = by[(small, name, "ours")]["items_read"], by[(large, name, "ours")]["items_read"]
        check(
            f"ours at N={large:,} about the same as at N={small:,} (at most 1.5x), {name}",
            ours_large <= 1.5 * max(ours_small, 1),
            f"{ours_small:,} -> {ours_large:,} items read",
        )
        base_small = by[(small, name, "baseline")]["items_read"]
        base_large = by[(large, name, "baseline")]["items_read"]
        growth = large / small
        check(
            f"baseline grows with N (at least {growth / 2:g}x for {growth:g}x the sessions), {name}",
            base_large >= growth / 2 * base_small,
            f"{base_small:,} -> {base_large:,} items read",
        )
    return found


def markdown(report: dict[str, Any]) -> str:
    sizes = report["sizes"]
    out = [
        f"Run of {report['generated_at']} on {report['machine']}: N = "
        f"{', '.join(f'{n:,}' for n in sizes)} sessions (half per developer, two developers), "
        f"page size {PAGE}. Latency is the median of up to {report['reps']} timed runs (fewer when another "
        f"would take the total past {REP_BUDGET_SECONDS:.0f} s; the count is in brackets). Whole run "
        f"{report['total_seconds']:.0f} s.",
        "",
        "### Filtered lists: ours (`lists.list_records`) against a full-table Scan",
        "",
        "| N | filter | matches | method | DynamoDB calls | items read | RCU | latency on moto (runs) |",
        "| ---: | --- | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for row in report["lists"]:
        out.append(
            f"| {row['n']:,} | `{json.dumps(row['filter'])}` | {row['matches']} | {row['method']} | "
            f"{row['calls_total']} {_calls_text(row['calls'])} | {row['items_read']:,} | "
            f"{_num(row['rcu'])} | {row['latency_ms_median']:,.1f} ms ({row['reps']}) |"
        )
    out += ["", "### Targets", ""]
    out += [f"- **{t['status']}** {t['target']}: {t['detail']}" for t in report["targets"]]
    out += [
        "",
        "### Write cost per operation (median of 3)",
        "",
        "| N | operation | DynamoDB calls | condition checks | items written | bytes written | WCU |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in report["writes"]:
        out.append(
            f"| {row['n']:,} | {row['operation']} | {row['calls_total']} {_calls_text(row['calls'])} | "
            f"{row['condition_checks']} | {row['items_written']} | {row['bytes_written']:,} | {row['wcu']} |"
        )
    out += ["", "### Seeding", ""]
    for n in sizes:
        s = report["seeding"][str(n)]
        out.append(
            f"- N = {n:,}: {s['sessions']:,} sessions through `records.create` in {s['seconds']} s "
            f"({s['ms_per_session']} ms/session)."
        )
    out += [
        "",
        "Latency on moto is not a target: moto's Query sorts the whole table on every call "
        "(`all_items()` in `moto/dynamodb/models/table.py`), so on moto any query's latency grows "
        "with the table whatever the design. The targets are on items read, which is what "
        "DynamoDB bills and what its latency follows.",
    ]
    return "\n".join(out)


INTRO = """# Performance

Figures from `make bench` (`bench/lists.py`): how much a filtered list of sessions reads, next to
a naive baseline (one Scan of the whole table with a FilterExpression, as Julep did), and what a
create and a metadata PATCH write. Everything runs in-process on moto; the costs (calls, items,
capacity units) are what real DynamoDB would bill for the same requests, the latencies are only
moto's.

How it counts (`bench/meter.py`):

- **items read**: for Query and Scan, the sum of `ScannedCount` (items read before any filter);
  for GetItem, 1 if an item came back; for BatchGetItem, the items in `Responses`.
- **RCU**, strongly consistent: GetItem and BatchGetItem 1 per 4 KB per item (at least 1 per key,
  found or not); Query and Scan the total size of the items scanned in one call rounded up to
  4 KB (at least 1 per call). Filtered or projected calls are re-sent unfiltered to size what
  they scanned.
- **item size** is approximated as, per attribute, the length of its name plus the length of
  `json.dumps` of its plain value (strings count 2 bytes of quotes more than DynamoDB does).
- **writes**: a Put writes the item it carries, a Delete the item it removed, an Update the item
  after it; WCU is 1 per 1 KB per item (of the larger of before and after), doubled inside a
  TransactWriteItems. Condition checks are counted apart.
- The per-request API-key GetItem is not included (both sides would pay it).
- Seeding goes through `records.create`, so the table holds exactly what the service writes. To
  make it affordable, the benchmark stops moto from deep-copying the whole table before each
  transaction (its rollback snapshot, which makes seeding quadratic: 250 creates took 85 s);
  moto still checks every condition, and the run stops if any transaction is cancelled.
- Each measurement is one recorded run (for the costs) and then up to 5 timed runs on plain
  moto. The recorded run and the costing keep moto's sorted item list between writes, which
  changes no answer and only saves waiting; the timed runs do not.
- Correctness is checked too: both sides must return exactly the expected page (the seeded
  sessions of developer 1 that match, newest first), never developer 2's, who has the same
  tenant names.
- The baseline finds a developer's sessions by the `dev#<d>#session#` key prefix (the tenancy
  rule of docs/design.md) and `attribute_exists(agent_id)`, and filters on `metadata.<key>`.

Run it with `make bench` (N = 1,000 and 10,000) or `BENCH_SIZES=1000 make bench` for a quick
check; the figures below are rewritten by every run, and also saved in `bench/results/lists.json`.

"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.lists", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 only")
    parser.add_argument("--sizes", help="comma-separated total session counts (default: BENCH_SIZES or 1000,10000)")
    parser.add_argument(
        "--reps",
        type=int,
        default=int(os.environ.get("BENCH_REPS", "5")),
        help="timed repetitions per measurement (default 5)",
    )
    args = parser.parse_args(argv)
    text = "1000" if args.quick else args.sizes or os.environ.get("BENCH_SIZES") or ",".join(map(str, DEFAULT_SIZES))
    args.sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    if any(n < 2 * 10 for n in args.sizes):
        parser.error("every size must be at least 20 sessions")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    log(f"bench.lists: N = {', '.join(f'{n:,}' for n in args.sizes)}; page size {PAGE}; {args.reps} timed repetitions")
    runs = {}
    with mock_aws(), moto_transactions_without_snapshot() as fast:
        if not fast:
            log("  warning: could not skip moto's per-transaction table snapshot; seeding will be slow")
        raw = boto3.client("dynamodb", region_name="us-east-1")
        for n in args.sizes:
            runs[n] = run_size(raw, n, args.reps)
    import moto

    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, moto {moto.__version__}",
        "sizes": args.sizes,
        "page_size": PAGE,
        "reps": args.reps,
        "seeding": {str(n): runs[n]["seeding"] for n in args.sizes},
        "lists": [row for n in args.sizes for row in runs[n]["lists"]],
        "writes": [row for n in args.sizes for row in runs[n]["writes"]],
    }
    report["targets"] = targets(args.sizes, report["lists"])
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    block = markdown(report)
    update_doc(block, BEGIN, END, intro=INTRO)
    publish(report, block, RESULTS, "figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
