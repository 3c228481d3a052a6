"""Benchmark: editing the history (issue 14) as its users meet it, over HTTP through `make run` on
DynamoDB Local, one kept-alive client, one request at a time.

    .venv/bin/python -m bench.editing                  # histories of 1,000 and 10,000 messages
    .venv/bin/python -m bench.editing --depths 200,2000 --samples 30   # a quick run

At each depth N (one session holding N messages of about 250 bytes, seeded 50 a request):
- after `warm_up` unmeasured rounds on a short history (DynamoDB Local's JVM compiles its hot paths),
  `samples` rounds, interleaved, of: a plain append of one message, an append with `after` (the
  last message's id), a GET of one message by id and a DELETE of one message, each on messages
  drawn at random;
- then one fork of the whole history, and one rewind to its first message (N - 1 removed).

Targets, each a ratio within this run: an append with `after` within 1.2 times a plain append at
the same depth (the check costs no round trip); a GET and a DELETE of one message at the larger
depth within 1.2 times the smaller (one read, whatever the length); fork and rewind time per
message at the larger depth within 1.2 times the smaller (they grow with what they copy or remove,
no faster); and both fit the request's 15 s budget at the larger depth.
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

from .local_stack import Client, LocalStack
from .report import at_most, figures_section, finish, log, new_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "editing.json"
BEGIN, END = "<!-- editing:begin -->", "<!-- editing:end -->"
HEADING = "## Editing the history: append-after, one message, fork and rewind\n\n"
BUDGET_SECONDS = 15.0
TEXT = "x" * 240


def seed(client: Client, session: str, count: int) -> None:
    for start in range(0, count, 50):
        batch = [{"role": "user", "content": f"{n} {TEXT}"} for n in range(start, min(count, start + 50))]
        client.call("POST", f"/sessions/{session}/history", {"messages": batch}, 201)


def history_ids(client: Client, session: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page, _, _ = client.call("GET", f"/sessions/{session}/history", params=params)
        ids += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids


def at_depth(client: Client, agent: str, depth: int, samples: int, rng: random.Random) -> dict[str, Any]:
    session = client.call("POST", "/sessions", {"agent_id": agent}, 201)[0]["id"]
    seed(client, session, depth)
    ids = history_ids(client, session)
    times: dict[str, list[float]] = {"append": [], "append after": [], "get one": [], "delete one": []}
    message = {"role": "user", "content": TEXT}
    for _ in range(samples):
        answer, took, _ = client.call("POST", f"/sessions/{session}/history", {"messages": [message]}, 201)
        times["append"].append(took)
        last = answer["items"][-1]["id"]
        body = {"messages": [message], "after": last}
        times["append after"].append(client.call("POST", f"/sessions/{session}/history", body, 201)[1])
        times["get one"].append(client.call("GET", f"/sessions/{session}/history/{rng.choice(ids)}")[1])
        doomed = ids.pop(rng.randrange(1, len(ids) - 1))
        times["delete one"].append(client.call("DELETE", f"/sessions/{session}/history/{doomed}", want=202)[1])
    figures: dict[str, Any] = {op: round(statistics.median(values), 2) for op, values in times.items()}
    held = len(history_ids(client, session))
    started = time.perf_counter()
    client.call("POST", f"/sessions/{session}/fork", {}, 201)
    figures["fork seconds"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    client.call("DELETE", f"/sessions/{session}/history", params={"after": ids[0]}, want=202)
    figures["rewind seconds"] = round(time.perf_counter() - started, 2)
    figures["messages"] = held
    return figures


def targets(report: dict[str, Any]) -> list[dict[str, str]]:
    depths = sorted(report["depths"], key=int)
    small, large = report["depths"][depths[0]], report["depths"][depths[-1]]
    found = []

    def target(name: str, value: float, limit: float, detail: str) -> None:
        found.append(at_most(name, value, limit, detail))

    for depth in depths:
        figures = report["depths"][depth]
        ratio = figures["append after"] / figures["append"]
        target(
            f"an append with `after` within 1.2x a plain one at {int(depth):,} messages",
            ratio,
            1.2,
            f"{figures['append after']} / {figures['append']} ms = {ratio:.2f}",
        )
    for op in ("get one", "delete one"):
        ratio = large[op] / small[op]
        target(
            f"{op} message at {int(depths[-1]):,} within 1.2x at {int(depths[0]):,}",
            ratio,
            1.2,
            f"{large[op]} / {small[op]} ms = {ratio:.2f}",
        )
    for op in ("fork seconds", "rewind seconds"):
        per_small, per_large = small[op] / small["messages"], large[op] / large["messages"]
        ratio = per_large / per_small
        name = op.split()[0]
        target(
            f"{name} time per message at {int(depths[-1]):,} within 1.2x at {int(depths[0]):,}",
            ratio,
            1.2,
            f"{per_large * 1000:.3f} / {per_small * 1000:.3f} ms = {ratio:.2f}",
        )
        target(
            f"a {name} of {large['messages']:,} messages within the {BUDGET_SECONDS:g} s request budget",
            large[op],
            BUDGET_SECONDS,
            f"{large[op]} s",
        )
    return found


def markdown(report: dict[str, Any]) -> str:
    depths = sorted(report["depths"], key=int)
    rows = [
        "| messages | append | append with `after` | GET one | DELETE one | fork (all) | rewind (all but 1) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for depth in depths:
        f = report["depths"][depth]
        rows.append(
            f"| {f['messages']:,} | {f['append']} ms | {f['append after']} ms | {f['get one']} ms | "
            f"{f['delete one']} ms | {f['fork seconds']} s | {f['rewind seconds']} s |"
        )
    return figures_section(
        f"Figures from `make bench` (`bench/editing.py`), {report['generated_at']}, {report['machine']}: "
        f"`make run` on DynamoDB Local over HTTP, one kept-alive client; p50 of {report['samples']} rounds "
        "(client wall time); fork and rewind timed once at each depth. Messages are about 250 bytes.",
        rows,
        report,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="1000,10000")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--warm-up", type=int, default=100, help="unmeasured rounds before the first depth")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rng = random.Random(args.seed)
    report = new_report(samples=args.samples, depths={})
    with tempfile.TemporaryDirectory(prefix="bench-editing-") as data_dir:
        stack = LocalStack("dynamodb-local", Path(data_dir))
        try:
            client = Client(stack)
            agent = client.call("POST", "/agents", {"name": "bench"}, 201)[0]["id"]
            log(f"editing: warming up ({args.warm_up} unmeasured rounds)")  # the JVM compiles its hot paths
            at_depth(client, agent, 2 * args.warm_up + 50, args.warm_up, rng)
            for depth in (int(d) for d in args.depths.split(",")):
                log(f"editing: {depth:,} messages")
                report["depths"][str(depth)] = at_depth(client, agent, depth, args.samples, rng)
        finally:
            stack.stop()
    return finish(report, started, targets, markdown, (RESULTS, BEGIN, END, HEADING), "editing figures")


if __name__ == "__main__":
    sys.exit(main())
