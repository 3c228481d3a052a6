"""Benchmark: deleting a long session (issue 15) as its users meet it, over HTTP through `make run`
on DynamoDB Local, one kept-alive client: the DELETE's latency, and how long until the table holds
none of the session's items.

    .venv/bin/python -m bench.lifecycle                     # 5,000 and 10,000 messages
    .venv/bin/python -m bench.lifecycle --depths 1000,2000  # a quick run

Two runs of `make run`: cascades in the request (SESSIONS_CASCADES=request: how a DELETE worked
before the stream) and from the table's stream (the default). At each depth one session holds that
many messages of about 250 bytes, seeded 50 a request; it is deleted, and its partition is counted
(a Query, Select COUNT) every 0.2 s until empty.

Targets: with the stream, a DELETE at the larger depth within 1.2 times one at the smaller (it does
not grow with the history) and under a second; at most a tenth of the in-request DELETE at the
larger depth (a ratio within this run); and the purge of the larger depth within 30 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import meter
from .local_stack import Client, LocalStack
from .report import at_most, figures_section, finish, log, new_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "lifecycle.json"
BEGIN, END = "<!-- lifecycle:begin -->", "<!-- lifecycle:end -->"
HEADING = "## Deleting a long session: in the request, and from the table's stream\n\n"
TEXT = "x" * 240
MODES = {"request": {"SESSIONS_CASCADES": "request"}, "stream": {}}


def items_left(dynamodb: Any, session: str) -> int:
    pk = {":pk": {"S": f"dev#bench#session#{session}"}}
    return meter.count(
        dynamodb, "query", {"TableName": "bench", "KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": pk}
    )


def at_depth(client: Client, dynamodb: Any, agent: str, depth: int) -> dict[str, Any]:
    session = client.call("POST", "/sessions", {"agent_id": agent}, 201)[0]["id"]
    for start in range(0, depth, 50):
        batch = [{"role": "user", "content": f"{n} {TEXT}"} for n in range(start, min(depth, start + 50))]
        client.call("POST", f"/sessions/{session}/history", {"messages": batch}, 201)
    started = time.perf_counter()
    requests = 1
    while client.http.delete(f"/sessions/{session}").status_code == 503:
        requests += 1  # a cascade past the request's budget: the client repeats the DELETE
    answered = time.perf_counter() - started
    while items_left(dynamodb, session):
        time.sleep(0.2)
    return {
        "delete seconds": round(answered, 3),
        "requests": requests,
        "purged seconds": round(time.perf_counter() - started, 2),
    }


def targets(report: dict[str, Any]) -> list[dict[str, str]]:
    depths = sorted(report["stream"], key=int)
    small, large = depths[0], depths[-1]
    stream, request = report["stream"], report["request"]
    found = []

    def target(name: str, value: float, limit: float, detail: str) -> None:
        found.append(at_most(name, value, limit, detail))

    ratio = stream[large]["delete seconds"] / max(stream[small]["delete seconds"], 0.001)
    target(
        f"with the stream, a DELETE at {int(large):,} messages within 1.2x one at {int(small):,}",
        ratio,
        1.2,
        f"{stream[large]['delete seconds']} / {stream[small]['delete seconds']} s = {ratio:.2f}",
    )
    target(
        f"with the stream, a DELETE of {int(large):,} messages under a second",
        stream[large]["delete seconds"],
        1.0,
        f"{stream[large]['delete seconds']} s",
    )
    ratio = stream[large]["delete seconds"] / request[large]["delete seconds"]
    target(
        f"with the stream, a DELETE of {int(large):,} messages at most 0.1x one that cascades in the request",
        ratio,
        0.1,
        f"{stream[large]['delete seconds']} / {request[large]['delete seconds']} s = {ratio:.3f}",
    )
    target(
        f"the table holds none of a deleted {int(large):,}-message session's items within 30 s",
        stream[large]["purged seconds"],
        30.0,
        f"{stream[large]['purged seconds']} s",
    )
    return found


def markdown(report: dict[str, Any]) -> str:
    rows = [
        "| messages | DELETE, cascading in the request | purged | DELETE, with the stream | purged |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for depth in sorted(report["stream"], key=int):
        before, after = report["request"][depth], report["stream"][depth]
        repeated = f" ({before['requests']} DELETEs)" if before["requests"] > 1 else ""
        rows.append(
            f"| {int(depth):,} | {before['delete seconds']} s{repeated} | {before['purged seconds']} s | "
            f"{after['delete seconds']} s | {after['purged seconds']} s |"
        )
    return figures_section(
        f"Figures from `make bench` (`bench/lifecycle.py`), {report['generated_at']}, {report['machine']}: "
        "`make run` on DynamoDB Local over HTTP, one kept-alive client; one DELETE at each depth, "
        "timed by the client; purged: from the DELETE until the session's partition is empty. "
        "Messages are about 250 bytes.",
        rows,
        report,
    )


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="5000,10000")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = new_report(request={}, stream={})
    for mode, env in MODES.items():
        with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as data_dir:
            stack = LocalStack("dynamodb-local", Path(data_dir), env)
            try:
                client = Client(stack)
                dynamodb = boto3.client(
                    "dynamodb",
                    endpoint_url=stack.database_endpoint,
                    region_name="us-east-1",
                    aws_access_key_id="bench",
                    aws_secret_access_key="bench",
                )
                agent = client.call("POST", "/agents", {"name": "bench"}, 201)[0]["id"]
                at_depth(client, dynamodb, agent, 500)  # the JVM compiles its hot paths
                for depth in (int(d) for d in args.depths.split(",")):
                    log(f"lifecycle: {mode}, {depth:,} messages")
                    report[mode][str(depth)] = at_depth(client, dynamodb, agent, depth)
            finally:
                stack.stop()
    return finish(report, started, targets, markdown, (RESULTS, BEGIN, END, HEADING), "lifecycle figures")


if __name__ == "__main__":
    sys.exit(main())
