"""Benchmark: editing the history at any length (issues 14 and 21) as its users meet it, over HTTP
through `make run` on DynamoDB Local (its stream consumer running), one kept-alive client, one
request at a time.

    .venv/bin/python -m bench.editing                  # histories of 1,000, 10,000 and 100,000 messages
    .venv/bin/python -m bench.editing --depths 1000,10000 --samples 10   # a quick run

At each depth N: one session A seeded with N messages of about 250 bytes (50 a request), its
context set to truncate at 8,000 tokens. After `warm_up` unmeasured rounds on a short history
(DynamoDB Local's JVM compiles its hot paths), `samples` rounds, interleaved, of: a plain append
of one message, an append with `after`, a read of the last 20 messages, `GET /context`, a GET and
a DELETE of one message drawn at random, a fork of the whole history, a rewind of that fork to its
first message (N - 1 hidden) and a clear of a second fork. The forks then go (their purges tidy
nothing of A). Then the background work, timed from the request's answer to the table holding
none of it (a Query count of the partition, every 0.2 s):
- a rewind of A to its first message: its range's N - 1 items deleted by the stream consumer;
- a deleted fork parent: a session B seeded with N, forked, B deleted (its history stays: the fork
  reads it), then the fork deleted: B's N items deleted.

Targets, each a ratio within this run: every request's p50 at the largest depth within 1.3 times
its p50 at the smallest (nothing that grows with the history runs in a request); an append with
`after` within 1.2 times a plain append at the same depth (the check costs no round trip); and
each background purge at the largest depth finishes (its time and items per second reported).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from . import meter
from .local_stack import Client, LocalStack
from .report import at_most, figures_section, finish, log, new_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "editing.json"
BEGIN, END = "<!-- editing:begin -->", "<!-- editing:end -->"
HEADING = "## Editing the history at any length: append, reads, fork, rewind, clear\n\n"
TEXT = "x" * 240
REQUESTS = ("append", "append after", "last 20", "context", "get one", "delete one", "fork", "rewind", "clear")
RATIO_TARGET = 1.3
AFTER_TARGET = 1.2
PURGE_TIMEOUT_SECONDS = 1800.0


class Table:
    """The `make run` database, read directly: how many messages a session's partition holds."""

    def __init__(self, stack: LocalStack) -> None:
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=stack.database_endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def messages(self, session: str) -> int:
        """All of them, counted (reads the whole partition: not while a purge is timed)."""
        return meter.count(self.client, "query", self._messages_of(session))

    def holds_more_than(self, session: str, left: int) -> bool:
        """Whether the partition holds more than `left` messages: one Query of `left + 1` items,
        so polling it does not slow the purge it waits for."""
        answer = self.client.query(**self._messages_of(session), Limit=left + 1, ProjectionExpression="pk")
        return answer["Count"] > left

    def purges_pending(self) -> int:
        values = {":pk": {"S": "dev#bench#purge"}}
        args = {"TableName": "bench", "KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": values}
        return meter.count(self.client, "query", args)

    def until_at_most(self, session: str, left: int) -> float:
        """Seconds until the session's partition holds at most `left` messages (polled each second)."""
        started = time.perf_counter()
        while self.holds_more_than(session, left):
            if time.perf_counter() - started > PURGE_TIMEOUT_SECONDS:
                raise SystemExit(f"the purge of session {session} did not finish in {PURGE_TIMEOUT_SECONDS:g} s")
            time.sleep(1.0)
        return time.perf_counter() - started

    def until_no_purge_pending(self) -> float:
        started = time.perf_counter()
        while self.purges_pending():
            if time.perf_counter() - started > PURGE_TIMEOUT_SECONDS:
                raise SystemExit(f"purges still pending after {PURGE_TIMEOUT_SECONDS:g} s")
            time.sleep(0.5)
        return time.perf_counter() - started

    @staticmethod
    def _messages_of(session: str) -> dict[str, Any]:
        values = {":pk": {"S": f"dev#bench#session#{session}"}, ":msg": {"S": "msg#"}}
        condition = "pk = :pk AND begins_with(sk, :msg)"
        return {"TableName": "bench", "KeyConditionExpression": condition, "ExpressionAttributeValues": values}


def new_session(client: Client, agent: str, count: int) -> str:
    body = {"agent_id": agent, "token_budget": 8000, "context_overflow": "truncate"}
    session = client.call("POST", "/sessions", body, 201)[0]["id"]
    for start in range(0, count, 50):
        batch = [{"role": "user", "content": f"{n} {TEXT}"} for n in range(start, min(count, start + 50))]
        client.call("POST", f"/sessions/{session}/history", {"messages": batch}, 201)
    return session


def some_ids(client: Client, session: str) -> list[str]:
    """Ids from the oldest and the newest pages (enough to draw from without reading N)."""
    oldest = client.call("GET", f"/sessions/{session}/history", params={"limit": "500"})[0]["items"]
    newest = client.call("GET", f"/sessions/{session}/history", params={"limit": "500", "order": "desc"})[0]
    return list(dict.fromkeys([m["id"] for m in oldest] + [m["id"] for m in newest["items"]]))  # once each


def at_depth(client: Client, table: Table, agent: str, depth: int, samples: int, rng: random.Random) -> dict:
    started = time.perf_counter()
    session = new_session(client, agent, depth)
    seeded = time.perf_counter() - started
    ids = some_ids(client, session)
    first = ids[0]
    times: dict[str, list[float]] = {op: [] for op in REQUESTS}
    message = {"role": "user", "content": TEXT}
    forks: list[str] = []
    history = f"/sessions/{session}/history"
    for _ in range(samples):
        answer, took, _ = client.call("POST", history, {"messages": [message]}, 201)
        times["append"].append(took)
        body = {"messages": [message], "after": answer["items"][-1]["id"]}
        times["append after"].append(client.call("POST", history, body, 201)[1])
        times["last 20"].append(client.call("GET", history, params={"limit": "20", "order": "desc"})[1])
        times["context"].append(client.call("GET", f"/sessions/{session}/context")[1])
        times["get one"].append(client.call("GET", f"{history}/{rng.choice(ids[1:])}")[1])
        doomed = ids.pop(rng.randrange(1, len(ids) - 1))
        times["delete one"].append(client.call("DELETE", f"{history}/{doomed}", want=202)[1])
        fork, took, _ = client.call("POST", f"/sessions/{session}/fork", None, 201)
        times["fork"].append(took)
        forks.append(fork["id"])
        fork_first = client.call("GET", f"/sessions/{fork['id']}/history", params={"limit": "1"})[0]["items"][0]
        params = {"after": fork_first["id"]}
        times["rewind"].append(client.call("DELETE", f"/sessions/{fork['id']}/history", params=params, want=202)[1])
        other = client.call("POST", f"/sessions/{session}/fork", {}, 201)[0]["id"]
        forks.append(other)
        times["clear"].append(client.call("DELETE", f"/sessions/{other}/history", want=202)[1])
    figures: dict[str, Any] = {op: round(statistics.median(values), 2) for op, values in times.items()}
    for fork_id in forks:
        client.call("DELETE", f"/sessions/{fork_id}", want=202)
    figures["forks purged seconds"] = round(table.until_no_purge_pending(), 2)  # apart from what is timed next
    held = table.messages(session)
    figures["messages"] = held
    figures["seed seconds"] = round(seeded, 1)

    # a rewind of A to its first message: the consumer deletes the range
    _, took, _ = client.call("DELETE", history, params={"after": first}, want=202)
    figures["rewind request ms"] = round(took, 2)
    gone = table.until_at_most(session, 1)
    figures["rewind purge seconds"], figures["rewind purged"] = round(gone, 2), held - 1

    # a deleted fork parent: kept while its fork reads it, purged once the fork goes
    parent = new_session(client, agent, depth)
    fork = client.call("POST", f"/sessions/{parent}/fork", {}, 201)[0]["id"]
    client.call("DELETE", f"/sessions/{parent}", want=202)
    time.sleep(1.0)
    kept = table.messages(parent)
    client.call("DELETE", f"/sessions/{fork}", want=202)
    gone = table.until_at_most(parent, 0)
    figures["parent kept"], figures["parent purge seconds"] = kept, round(gone, 2)
    return figures


def targets(report: dict[str, Any]) -> list[dict[str, str]]:
    depths = sorted(report["depths"], key=int)
    small, large = report["depths"][depths[0]], report["depths"][depths[-1]]
    found = []
    for op in REQUESTS:
        ratio = large[op] / small[op]
        found.append(
            at_most(
                f"{op} at {int(depths[-1]):,} messages within {RATIO_TARGET}x at {int(depths[0]):,}",
                ratio,
                RATIO_TARGET,
                f"{large[op]} / {small[op]} ms = {ratio:.2f}",
            )
        )
    for depth in depths:
        figures = report["depths"][depth]
        ratio = figures["append after"] / figures["append"]
        found.append(
            at_most(
                f"an append with `after` within {AFTER_TARGET}x a plain one at {int(depth):,} messages",
                ratio,
                AFTER_TARGET,
                f"{figures['append after']} / {figures['append']} ms = {ratio:.2f}",
            )
        )
    for what, purged in (("rewind", "rewind purged"), ("parent", "parent kept")):
        seconds = large[f"{what} purge seconds"]
        found.append(
            at_most(
                f"the background purge of {large[purged]:,} messages ({what}) finishes",
                seconds,
                PURGE_TIMEOUT_SECONDS,
                f"{seconds} s, {large[purged] / max(seconds, 0.001):,.0f} items/s",
            )
        )
    return found


def markdown(report: dict[str, Any]) -> str:
    depths = sorted(report["depths"], key=int)
    rows = [
        "| messages | append | with `after` | last 20 | context | GET one | DELETE one | fork | rewind | clear |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for depth in depths:
        f = report["depths"][depth]
        rows.append(f"| {f['messages']:,} | " + " | ".join(f"{f[op]} ms" for op in REQUESTS) + " |")
    rows += [
        "",
        "| messages | rewind to the first: request | its purge | deleted fork parent: kept "
        "| its purge after the fork went |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for depth in depths:
        f = report["depths"][depth]
        rows.append(
            f"| {f['messages']:,} | {f['rewind request ms']} ms | {f['rewind purge seconds']} s "
            f"({f['rewind purged'] / max(f['rewind purge seconds'], 0.001):,.0f} items/s) | {f['parent kept']:,} | "
            f"{f['parent purge seconds']} s ({f['parent kept'] / max(f['parent purge seconds'], 0.001):,.0f} items/s) |"
        )
    return figures_section(
        f"Figures from `make bench` (`bench/editing.py`), {report['generated_at']}, {report['machine']}: "
        f"`make run` on DynamoDB Local over HTTP with its stream consumer, one kept-alive client; p50 of "
        f"{report['samples']} rounds (client wall time). Messages are about 250 bytes; the context "
        "truncates at 8,000 tokens; fork, rewind and clear act on the whole history. Purges are timed "
        "from the request's answer until the table holds none of the range.",
        rows,
        report,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="1000,10000,100000")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--warm-up", type=int, default=30, help="unmeasured rounds before the first depth")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rng = random.Random(args.seed)
    report = new_report(samples=args.samples, depths={})
    with tempfile.TemporaryDirectory(prefix="bench-editing-") as data_dir:
        stack = LocalStack("dynamodb-local", Path(data_dir))
        try:
            client = Client(stack)
            table = Table(stack)
            agent = client.call("POST", "/agents", {"name": "bench"}, 201)[0]["id"]
            log(f"editing: warming up ({args.warm_up} unmeasured rounds)")  # the JVM compiles its hot paths
            at_depth(client, table, agent, 200, args.warm_up, rng)
            for depth in (int(d) for d in args.depths.split(",")):
                log(f"editing: {depth:,} messages")
                report["depths"][str(depth)] = figures = at_depth(client, table, agent, depth, args.samples, rng)
                log(f"  {figures}")
        finally:
            stack.stop()
    return finish(report, started, targets, markdown, (RESULTS, BEGIN, END, HEADING), "editing figures")


if __name__ == "__main__":
    sys.exit(main())
