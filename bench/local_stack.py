"""Benchmark: the local stack as its users meet it, over HTTP on kept-alive connections, through
`make run`'s own server (infra/local_server.py) on DynamoDB Local and on moto's fallback server.

    make bench                                    # both engines, 1,000 and 10,000 sessions
    .venv/bin/python -m bench.local_stack --engines dynamodb-local --sizes 1000,10000 --samples 300
    .venv/bin/python -m bench.local_stack --quick  # 200 and 1,000 sessions, 100 messages, fewer samples

For each engine, one `make run` process on an empty data folder, one httpx client (one kept-alive
connection), one request at a time:

1. Sessions are created one after another (10 agents, 100 users, metadata `tenant` of 100 values,
   an `i` and a `db_uuid`), and every create is timed: the p50 of each block of 1,000 shows whether
   a create gets slower as the table grows.
2. Before the first size, `warm_up` unmeasured rounds of every operation but create (the JVM
   compiles DynamoDB Local's hot paths during its first thousands of requests). At each size N,
   `samples` rounds of six requests, interleaved so that drift hits all alike:
   create (the table grows by `samples` during it), get, patch (a metadata key), a filtered list
   (`{"tenant": ...}`, 10 a page: N/100 match), a history append (one message) and a history read
   (the last 10 turns, `order=desc&limit=10`), each on sessions drawn at random.
3. History depth: appends and reads of one message / the last 10 turns on sessions holding 10
   messages, and on one session holding 10,000 (seeded 50 a request).

Every request's latency is taken twice: by the client (wall time around the call) and by the app
(the `latency` of its JSON log line, matched by X-Request-Id). Targets, on DynamoDB Local: every
p50 at the larger size or depth within 1.2 times the smaller's, and the client's p50 within 3 ms
of the app's (no stall between the app and the socket). Also recorded: the resident memory of the
database process at 2,000 and at the largest size, and after deleting an agent with 150 sessions
of 3 messages each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra import dynamodb_local, local_database  # noqa: E402

from .report import finish, log, new_report, update_doc  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "local_stack.json"
BEGIN, END = "<!-- local-stack:begin -->", "<!-- local-stack:end -->"
HEADING = """## The local stack over HTTP: DynamoDB Local and moto's server

Figures from `make bench` (`bench/local_stack.py`): `make run`'s own server, driven over HTTP by
one httpx client on one kept-alive connection, one request at a time, on an empty data folder; on
DynamoDB Local (Amazon's engine, the default) and on moto's server (the fallback, with the fixes
of infra/moto_dynamodb.py). Unlike the sections above, these latencies mean something: DynamoDB
Local is a real engine on SQLite, on this machine, reached over loopback HTTP as the app reaches
DynamoDB. Client latency is wall time around each call; app latency is the `latency` of the app's
own log line for the same request (matched by X-Request-Id). The method is in the module's
docstring.

"""
RATIO_TARGET = 1.2
GAP_TARGET_MS = 3.0
OPERATIONS = ("create", "get", "patch", "filtered list", "history append", "history read")
TENANTS = 100


class LocalStack:
    """One `make run` on an empty data folder, its log lines collected by request id."""

    def __init__(self, engine: str, data_dir: Path, env_extra: dict[str, str] | None = None) -> None:
        self.engine = engine
        self.key = "sk_bench_" + uuid.uuid4().hex
        self.port = local_database.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        env.update(
            {
                "PORT": str(self.port),
                "SESSIONS_DATA_DIR": str(data_dir),
                "SESSIONS_LOCAL_DB": engine,
                "SESSIONS_API_KEYS": f"bench:{self.key}",
                "SESSIONS_TABLE": "bench",
                **(env_extra or {}),
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "infra" / "local_server.py")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.app_latency: dict[str, float] = {}
        self.said: list[str] = []
        started = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(started,), daemon=True)
        self._reader.start()
        if not started.wait(120):
            self.stop()
            raise SystemExit(f"make run did not start on {engine}:\n" + "".join(self.said))
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self, started: threading.Event) -> None:
        for line in self.process.stdout:
            if line.startswith("{"):
                try:
                    entry = json.loads(line)
                    self.app_latency[entry["request_id"]] = float(entry["latency"])
                    continue
                except (ValueError, KeyError):
                    pass
            self.said.append(line)
            if line.startswith("Serving the sessions API"):
                started.set()

    @property
    def database_endpoint(self) -> str:
        """Where make run's database answers, as its `Database: ` line says."""
        line = next(line for line in self.said if line.startswith("Database: "))
        return line.split(" at ", 1)[1].split(",")[0]

    def database_rss_mb(self) -> float:
        pid = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()[0]
        status = Path(f"/proc/{pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class Client:
    """A kept-alive httpx client that times each call and remembers its request id."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.key}"}, timeout=60)

    def call(
        self, method: str, path: str, body: Any = None, want: int = 200, params: dict[str, str] | None = None
    ) -> tuple[Any, float, str]:
        started = time.perf_counter()
        answer = self.http.request(method, path, json=body, params=params)
        took = (time.perf_counter() - started) * 1000
        if answer.status_code != want:
            raise SystemExit(f"{method} {path} answered {answer.status_code}: {answer.text[:300]}")
        return answer.json(), took, answer.headers["X-Request-Id"]


class Sample:
    """Client and app latencies of one operation at one size."""

    def __init__(self) -> None:
        self.client: list[float] = []
        self.request_ids: list[str] = []

    def add(self, took: float, request_id: str) -> None:
        self.client.append(took)
        self.request_ids.append(request_id)

    def figures(self, stack: LocalStack) -> dict[str, float]:
        app = [stack.app_latency[r] for r in self.request_ids if r in stack.app_latency]
        return {
            "n": len(self.client),
            "p50": percentile(self.client, 50),
            "p99": percentile(self.client, 99),
            "app_p50": percentile(app, 50) if app else float("nan"),
            "app_n": len(app),
        }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


class Run:
    def __init__(self, stack: LocalStack, rng: random.Random) -> None:
        self.stack, self.rng = stack, rng
        self.client = Client(stack)
        self.agents = [self.client.call("POST", "/agents", {"name": f"a{n}"}, 201)[0]["id"] for n in range(10)]
        self.users = [self.client.call("POST", "/users", {"name": f"u{n}"}, 201)[0]["id"] for n in range(100)]
        self.sessions: list[str] = []
        self.create_times: list[float] = []
        self.rss_mb: dict[int, float] = {}  # sessions -> MB

    def create(self) -> tuple[float, str]:
        i = len(self.sessions)
        body = {
            "agent_id": self.rng.choice(self.agents),
            "user_id": self.rng.choice(self.users),
            "situation": "You are Sara, a coach.",
            "metadata": {"tenant": f"t-{i % TENANTS}", "i": i, "db_uuid": str(uuid.uuid4())},
        }
        answer, took, request_id = self.client.call("POST", "/sessions", body, 201)
        self.sessions.append(answer["id"])
        self.create_times.append(took)
        return took, request_id

    def fill_to(self, size: int) -> None:
        while len(self.sessions) < size:
            self.create()
            if len(self.sessions) == 2000:
                self.rss_mb[2000] = self.stack.database_rss_mb()
            if len(self.sessions) % 1000 == 0:
                log(
                    f"  {self.stack.engine}: {len(self.sessions):,} sessions, p50 of the last 1,000 creates "
                    f"{statistics.median(self.create_times[-1000:]):.2f} ms"
                )

    def warm_up(self, rounds: int, touched: list[str]) -> None:
        """Every operation but create, `rounds` times, unmeasured: the JVM compiles DynamoDB Local's
        hot paths during its first few thousand requests, and the first size would otherwise be
        measured colder than the next (creates are not repeated: they would change the size)."""
        for n in range(rounds):
            session = self.rng.choice(self.sessions)
            self.client.call("GET", f"/sessions/{session}")
            self.client.call("PATCH", f"/sessions/{session}", {"metadata": {"warm": n}})
            self.client.call(
                "GET", "/sessions", params={"limit": "10", "metadata_filter": json.dumps({"tenant": "t-1"})}
            )
            self.client.call(
                "POST",
                f"/sessions/{touched[n % len(touched)]}/history",
                {"messages": [{"role": "user", "content": "warm"}]},
                201,
            )
            self.client.call("GET", f"/sessions/{touched[n % len(touched)]}/history?order=desc&limit=10")

    def at_size(self, samples: int, touched: list[str]) -> dict[str, Sample]:
        """The six operations, `samples` rounds, interleaved."""
        got = {operation: Sample() for operation in OPERATIONS}
        pool = self.sessions[:]
        for n in range(samples):
            got["create"].add(*self.create())
            session = self.rng.choice(pool)
            got["get"].add(*self.client.call("GET", f"/sessions/{session}")[1:])
            got["patch"].add(
                *self.client.call("PATCH", f"/sessions/{self.rng.choice(pool)}", {"metadata": {"touched": n}})[1:]
            )
            tenant = json.dumps({"tenant": f"t-{self.rng.randrange(TENANTS)}"})
            got["filtered list"].add(
                *self.client.call("GET", "/sessions", params={"limit": "10", "metadata_filter": tenant})[1:]
            )
            target = self.rng.choice(touched)
            got["history append"].add(
                *self.client.call(
                    "POST", f"/sessions/{target}/history", {"messages": [{"role": "user", "content": f"turn {n}"}]}, 201
                )[1:]
            )
            got["history read"].add(
                *self.client.call("GET", f"/sessions/{self.rng.choice(touched)}/history?order=desc&limit=10")[1:]
            )
        return got

    def depth(self, messages: int, samples: int, sessions: list[str]) -> dict[str, Sample]:
        """Appends and reads on sessions already holding `messages` messages."""
        for session in sessions:
            for start in range(0, messages, 50):
                batch = [
                    {"role": "user" if k % 2 == 0 else "assistant", "content": f"message {start + k}"}
                    for k in range(min(50, messages - start))
                ]
                self.client.call("POST", f"/sessions/{session}/history", {"messages": batch}, 201)
        got = {"history append": Sample(), "history read": Sample()}
        for n in range(samples):
            session = sessions[n % len(sessions)]
            got["history append"].add(
                *self.client.call(
                    "POST",
                    f"/sessions/{session}/history",
                    {"messages": [{"role": "user", "content": f"more {n}"}]},
                    201,
                )[1:]
            )
            got["history read"].add(*self.client.call("GET", f"/sessions/{session}/history?order=desc&limit=10")[1:])
        return got

    def agent_delete_rss(self) -> tuple[float, float, float]:
        """RSS before and after deleting an agent with 150 sessions of 3 messages, and its time."""
        agent = self.client.call("POST", "/agents", {"name": "doomed"}, 201)[0]["id"]
        for n in range(150):
            session = self.client.call("POST", "/sessions", {"agent_id": agent}, 201)[0]["id"]
            self.client.call(
                "POST",
                f"/sessions/{session}/history",
                {"messages": [{"role": "user", "content": f"hello {n}.{k}"} for k in range(3)]},
                201,
            )
        before = self.stack.database_rss_mb()
        started = time.perf_counter()
        self.client.call("DELETE", f"/agents/{agent}", want=202)
        took = time.perf_counter() - started
        return before, self.stack.database_rss_mb(), took


def bench_engine(
    engine: str, sizes: list[int], samples: int, depths: list[int], seed: int, warm_up: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-local-") as data_dir:
        stack = LocalStack(engine, Path(data_dir))
        try:
            run = Run(stack, rng)
            report: dict[str, Any] = {
                "engine": engine,
                "said": [line.strip() for line in stack.said],
                "sizes": {},
                "depths": {},
            }
            touched: list[str] = []
            for size in sizes:
                started = time.perf_counter()
                run.fill_to(size)
                if not touched:  # sessions that get history appends: a fixed pool, 3 messages each
                    touched = rng.sample(run.sessions, 50)
                    for session in touched:
                        run.client.call(
                            "POST",
                            f"/sessions/{session}/history",
                            {"messages": [{"role": "user", "content": "first"}] * 3},
                            201,
                        )
                    run.warm_up(warm_up, touched)
                log(f"  {engine}: measuring at {size:,} sessions ({samples} rounds)")
                figures = {op: sample.figures(stack) for op, sample in run.at_size(samples, touched).items()}
                report["sizes"][str(size)] = figures
                run.rss_mb[len(run.sessions)] = stack.database_rss_mb()
                log(f"  {engine}: {size:,} done in {time.perf_counter() - started:.0f} s")
            for messages in depths:
                log(f"  {engine}: measuring at {messages:,} messages")
                # a few messages: as many sessions as rounds; many: one session
                sessions = run.sessions[-samples:] if messages <= 100 else [run.sessions[-1]]
                report["depths"][str(messages)] = {
                    op: sample.figures(stack) for op, sample in run.depth(messages, samples, sessions).items()
                }
            before, after, took = run.agent_delete_rss()
            report["rss_mb"] = {f"at {count:,} sessions": round(mb, 1) for count, mb in sorted(run.rss_mb.items())}
            report["rss_mb"]["before deleting an agent with 150 sessions of 3 messages (and the histories above)"] = (
                round(before, 1)
            )
            report["rss_mb"]["after that delete"] = round(after, 1)
            report["agent_delete_seconds"] = round(took, 2)
            blocks = [run.create_times[k : k + 1000] for k in range(0, len(run.create_times), 1000)]
            report["create_p50_per_1000"] = [
                round(statistics.median(block), 2) for block in blocks if len(block) == 1000
            ]
            first, last = run.create_times[:200], run.create_times[1800:2000]
            if len(last) == 200:
                report["creates_1_200_vs_1801_2000"] = [
                    round(statistics.median(first), 2),
                    round(statistics.median(last), 2),
                ]
            return report
        finally:
            stack.stop()


def targets(report: dict[str, Any]) -> list[dict[str, str]]:
    found = []
    for engine in report["engines"]:
        if engine["engine"] != local_database.DYNAMODB_LOCAL:
            continue
        for axis, what in (("sizes", "sessions"), ("depths", "messages")):
            keys = sorted(engine[axis], key=int)
            if len(keys) < 2:
                continue
            small, large = engine[axis][keys[0]], engine[axis][keys[-1]]
            for op in large:
                ratio = large[op]["p50"] / small[op]["p50"]
                found.append(
                    {
                        "target": f"{op}: p50 at {int(keys[-1]):,} {what} within {RATIO_TARGET}x of {int(keys[0]):,}",
                        "status": "PASS" if ratio <= RATIO_TARGET else "FAIL",
                        "detail": f"{large[op]['p50']:.2f} / {small[op]['p50']:.2f} ms = {ratio:.2f}x",
                    }
                )
        for axis in ("sizes", "depths"):
            for key, ops in engine[axis].items():
                for op, f in ops.items():
                    gap = f["p50"] - f["app_p50"]
                    found.append(
                        {
                            "target": f"{op} at {int(key):,} {'sessions' if axis == 'sizes' else 'messages'}: "
                            f"client p50 within {GAP_TARGET_MS:g} ms of the app's",
                            "status": "PASS" if gap <= GAP_TARGET_MS else "FAIL",
                            "detail": f"{f['p50']:.2f} - {f['app_p50']:.2f} = {gap:.2f} ms",
                        }
                    )
    return found


def markdown(report: dict[str, Any]) -> str:
    out = [
        f"Run of {report['generated_at']} on {report['machine']}: {report['samples']} rounds a size "
        f"(each of the six operations once a round) after {report['warm_up']} unmeasured rounds, "
        f"whole run {report['total_seconds']:.0f} s.",
        "",
    ]
    for engine in report["engines"]:
        name = (
            "DynamoDB Local " + dynamodb_local.ENGINE_VERSION
            if engine["engine"] == "dynamodb-local"
            else "moto's server"
        )
        out += [
            f"### {name}",
            "",
            "| operation | at | client p50 | client p99 | app p50 | client - app | p50 ratio | p99 ratio |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for axis, unit in (("sizes", "sessions"), ("depths", "messages")):
            keys = sorted(engine[axis], key=int)
            ops = list(engine[axis][keys[0]]) if keys else []
            for op in ops:
                base = engine[axis][keys[0]][op]
                for key in keys:
                    f = engine[axis][key][op]
                    ratios = (
                        ("", "")
                        if key == keys[0]
                        else (f"{f['p50'] / base['p50']:.2f}x", f"{f['p99'] / base['p99']:.2f}x")
                    )
                    out.append(
                        f"| {op} | {int(key):,} {unit} | {f['p50']:.2f} ms | {f['p99']:.2f} ms | "
                        f"{f['app_p50']:.2f} ms | {f['p50'] - f['app_p50']:.2f} ms | {ratios[0]} | {ratios[1]} |"
                    )
        out += [""]
        if engine.get("create_p50_per_1000"):
            out += [
                "Create p50 per block of 1,000 creates, in order: "
                + ", ".join(f"{v:.2f}" for v in engine["create_p50_per_1000"])
                + " ms."
            ]
        if engine.get("creates_1_200_vs_1801_2000"):
            first, last = engine["creates_1_200_vs_1801_2000"]
            out += [f"Creates 1-200 against 1,801-2,000: p50 {first:.2f} ms and {last:.2f} ms."]
        if engine["engine"] == local_database.MOTO:
            out += [
                "moto's Query still walks its whole partition (moto/dynamodb/models/table.py), so on moto a "
                "history append or read at 10,000 messages costs several times what it does at 10 (the append "
                "reads the newest message first); moto is the fallback, and its figures are not targets."
            ]
        out += [
            "Resident memory of the database process: "
            + "; ".join(f"{what} {mb:,.0f} MB" for what, mb in engine["rss_mb"].items())
            + f" (the delete took {engine['agent_delete_seconds']:.1f} s).",
            "",
        ]
    out += ["### Targets", "", "| target | status | figures |", "| --- | --- | --- |"]
    out += [f"| {t['target']} | {t['status']} | {t['detail']} |" for t in report["targets"]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="dynamodb-local,moto")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--depths", default="10,10000")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--warm-up", type=int, default=400, help="unmeasured rounds before the first size")
    parser.add_argument("--quick", action="store_true", help="200 and 1,000 sessions, 10 and 100 messages, 60 rounds")
    parser.add_argument(
        "--render", action="store_true", help="rewrite the doc from the last results, measuring nothing"
    )
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads(RESULTS.read_text())
        update_doc(markdown(report), BEGIN, END, heading=HEADING)
        return 0
    if args.quick:
        args.sizes, args.depths, args.samples, args.warm_up = "200,1000", "10,100", 60, 60
    started = time.perf_counter()
    engines = [e for e in args.engines.split(",") if e]
    report = new_report(samples=args.samples, warm_up=args.warm_up, engines=[])
    for engine in engines:
        log(f"{engine}: sizes {args.sizes}, depths {args.depths}, {args.samples} rounds")
        report["engines"].append(
            bench_engine(
                engine,
                [int(s) for s in args.sizes.split(",")],
                args.samples,
                [int(d) for d in args.depths.split(",")],
                args.seed,
                args.warm_up,
            )
        )
    return finish(report, started, targets, markdown, (RESULTS, BEGIN, END, HEADING), "local-stack figures")


if __name__ == "__main__":
    sys.exit(main())
