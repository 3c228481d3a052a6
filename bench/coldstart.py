"""Benchmark: the cold start, what a Lambda's first invocation pays before and while answering.

    make bench                                   # first, before bench.lists
    .venv/bin/python -m bench.coldstart          # 15 rounds (BENCH_COLDSTART_RUNS)
    .venv/bin/python -m bench.coldstart --runs 20

Every figure comes from a fresh Python process (the cold start is a new process), timed inside
it around the one thing measured, so interpreter start-up, which every process pays alike, is
left out: wall-clock time (`time.perf_counter()`, what a caller waits; the targets) and the
process's own CPU time (`time.process_time()`, user + system: it leaves out waiting, for moto's
answers or for a CPU, though on a busy machine it grows too). The processes are interleaved:
each round runs one of every kind, in a shuffled order (fixed seed), so a machine that slows down
or speeds up during the run moves all of them alike, and the ratios, each between two medians of
the same run, are what to compare from one run to another. A first, untimed round writes the
bytecode caches. Figures are the median of the rounds, with the spread (quartiles, and min-max) beside them.

Bytecode caches: installed packages (boto3, chalice, pydantic) always have theirs. The app's own
modules are measured both ways: from the checkout, with `__pycache__` written by the first round
(as when the deployment package carries it), and "no caches", from a copy of app.py and
chalicelib/ without `__pycache__`, run with PYTHONDONTWRITEBYTECODE: every import compiles them,
as on a Lambda whose package has only sources (its file system is read-only, so nothing is ever
cached there).

- floor: `import boto3, chalice, pydantic`, the app's own dependencies. Also `import boto3,
  chalice` alone: `import app` leaves pydantic to the first request, so it can come out under the
  floor, and this says what the app's own modules add to what they do import.
- import app: `import app` with every route registered. Target: at most 1.3 x the floor, with
  caches and without. After it, the process reports which optional heavy modules are loaded
  (jinja2, chalicelib.rules.templates, chalicelib.providers*, chalicelib.web.openapi, moto, aws_cdk: none
  may be), whether pydantic is, and which chalicelib modules are.
- first request: in a fresh process, `import app`, then one API Gateway proxy event (REST API,
  as Lambda hands it to the function) through `app.app(event, context)`, timed: GET /agents with
  a valid `Authorization: Bearer` key, answering the seeded agents; then the same request again
  (the second request: what a warm process pays). The first request makes the process's boto3
  DynamoDB client, reads the key, queries the list and builds whatever the import left for later.
  The same without caches (GET only), and for POST /agents (a create, so request-body validation
  runs; as another developer, so it never changes what the GET lists), in their own processes.
- first-request floor: a fresh process that has imported boto3 (untimed) makes a DynamoDB client
  and sends one GetItem, timed: what any first request against DynamoDB pays at least.
- import + first request: the import and the first request of the same process, added, against
  the two floors added: what a cold start costs in all, whichever side of the import the work is.

DynamoDB is moto's server, started by the benchmark in its own process on a free loopback port
(`python -m moto.server`), reached through `AWS_ENDPOINT_URL` with dummy credentials: every
request crosses a real HTTP connection, as on Lambda, and moto's work is in another process. The
table is built with chalicelib.store.schema.create_table, the key registered with
chalicelib.rules.auth.register_key, and three agents created through chalicelib.rules.service, before any
timed process starts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

from .report import log, publish, update_doc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "coldstart.json"
BEGIN, END = "<!-- coldstart:begin -->", "<!-- coldstart:end -->"

TARGET_RATIO = 1.3
DEFAULT_RUNS = 15
SEED = 20261125
TABLE = "sessions-coldstart"
DEVELOPER = "bench-coldstart"
KEY = "sk_bench_coldstart_not_a_secret"
WRITER, WRITER_KEY = "bench-coldstart-writer", "sk_bench_coldstart_writer_not_a_secret"  # POSTs: a developer of
# its own, so the agents they create never show in the reader's GET /agents
AGENTS = 3
# Loaded by `import app`, these would be paid by every cold start; each is needed only by some
# requests (a template, a chat, the API's description) or never at run time (moto, the CDK).
HEAVY = ("jinja2", "chalicelib.rules.templates", "chalicelib.providers", "chalicelib.web.openapi", "moto", "aws_cdk")

# --- what the fresh processes run -------------------------------------------------------------------
# Each prints one JSON line. They import nothing of the benchmark, so they pay only what they time.

_PRELUDE = f"""
import json, sys, time

def now():
    return time.perf_counter(), time.process_time()

def spent(start, end):
    # milliseconds of wall-clock time and of this process's CPU time (user + system)
    return {{"wall": (end[0] - start[0]) * 1e3, "cpu": (end[1] - start[1]) * 1e3}}

def loaded(prefixes):
    return sorted(m for m in sys.modules if any(m == p or m.startswith(p + ".") for p in prefixes))

HEAVY = {HEAVY!r}
"""

FLOOR = (
    _PRELUDE
    + """
t0 = now()
import boto3, chalice, pydantic
t1 = now()
print(json.dumps({"import": spent(t0, t1)}))
"""
)

# What `import app` imports of the three, when it leaves pydantic to the first request.
FLOOR_WITHOUT_PYDANTIC = (
    _PRELUDE
    + """
t0 = now()
import boto3, chalice
t1 = now()
print(json.dumps({"import": spent(t0, t1)}))
"""
)

IMPORT_APP = (
    _PRELUDE
    + """
t0 = now()
import app
t1 = now()
print(json.dumps({"import": spent(t0, t1), "heavy": loaded(HEAVY), "chalicelib": loaded(["chalicelib"]),
                  "pydantic": "pydantic" in sys.modules,
                  "routes": sum(len(methods) for methods in app.app.routes.values()), "file": app.__file__}))
"""
)

FIRST_REQUEST = (
    _PRELUDE
    + """
import uuid
from types import SimpleNamespace
t0 = now()
import app
t1 = now()
after_import = loaded(["chalicelib"])

def event(method, path, body=None):
    # A REST API (v1) proxy event as API Gateway hands it to Lambda.
    headers = {"Authorization": "Bearer " + KEY, "Accept": "application/json", "Host": "example.execute-api"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return {"resource": path, "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": None, "stageVariables": None,
            "requestContext": {"resourcePath": path, "httpMethod": method, "path": "/api" + path,
                               "stage": "api", "requestId": str(uuid.uuid4()),
                               "identity": {"sourceIp": "127.0.0.1"}},
            "body": None if body is None else json.dumps(body), "isBase64Encoded": False}

context = SimpleNamespace(function_name="sessions", aws_request_id=str(uuid.uuid4()),
                          memory_limit_in_mb=1024, get_remaining_time_in_millis=lambda: 29_000)
events = [event(METHOD, "/agents", BODY), event(METHOD, "/agents", BODY)]
answers, times = [], []
for one in events:
    started = now()
    answers.append(app.app(one, context))
    times.append(spent(started, now()))
print(json.dumps({"import": spent(t0, t1), "first": times[0], "second": times[1],
                  "statuses": [a["statusCode"] for a in answers],
                  "items": [len(json.loads(a["body"]).get("items", [])) for a in answers],
                  "loaded_by_first": sorted(set(loaded(["chalicelib"])) - set(after_import)),
                  "heavy": [m for m in after_import if any(m == p or m.startswith(p + ".") for p in HEAVY)]}))
"""
)

REQUEST_FLOOR = (
    _PRELUDE
    + """
import os
import boto3
table, key = os.environ["SESSIONS_TABLE"], {"pk": {"S": "absent"}, "sk": {"S": "absent"}}
t0 = now()
client = boto3.client("dynamodb")
client.get_item(TableName=table, Key=key, ConsistentRead=True)
t1 = now()
client.get_item(TableName=table, Key=key, ConsistentRead=True)
t2 = now()
print(json.dumps({"first": spent(t0, t1), "second": spent(t1, t2)}))
"""
)


def first_request(key: str, method: str, body: dict[str, Any] | None) -> str:
    return f"KEY = {key!r}\nMETHOD = {method!r}\nBODY = {body!r}\n" + FIRST_REQUEST


# name: (script, from where). "cached": the checkout, whose modules have bytecode caches, as every
# installed package has; "source": a copy of app.py and chalicelib/ without them, run with
# PYTHONDONTWRITEBYTECODE, so the app's own modules are compiled at every import, as on a Lambda
# whose package was built without __pycache__ (its file system is read-only: nothing is cached).
KINDS: dict[str, tuple[str, str]] = {
    "floor": (FLOOR, "cached"),
    "floor_without_pydantic": (FLOOR_WITHOUT_PYDANTIC, "cached"),
    "import_app": (IMPORT_APP, "cached"),
    "import_app_source": (IMPORT_APP, "source"),
    "first_get": (first_request(KEY, "GET", None), "cached"),
    "first_get_source": (first_request(KEY, "GET", None), "source"),
    "first_post": (
        first_request(
            WRITER_KEY,
            "POST",
            {
                "name": "Cold",
                "about": "made by bench.coldstart",
                "instructions": ["Be brief"],
                "metadata": {"run": "coldstart"},
            },
        ),
        "cached",
    ),
    "request_floor": (REQUEST_FLOOR, "cached"),
}


def source_copy(into: Path) -> Path:
    """app.py and chalicelib/ as they are now, without bytecode caches."""
    shutil.copy2(ROOT / "app.py", into / "app.py")
    shutil.copytree(ROOT / "chalicelib", into / "chalicelib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return into


def run_child(script: str, where: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=where, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"a measured process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- moto's server --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    """moto's DynamoDB in its own process on loopback, for as long as the `with` lasts."""

    def __enter__(self) -> str:
        port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"moto's server exited with {self.process.returncode}")
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                return endpoint
            except urllib.error.HTTPError:
                return endpoint
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise SystemExit("moto's server did not answer within 30 s")

    def __exit__(self, *_: Any) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def child_env(endpoint: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SESSIONS_", "OPENAI_")) and k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
    }
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "SESSIONS_TABLE": TABLE,
            "SESSIONS_CURSOR_SECRET": "bench-coldstart-not-a-secret",
        }
    )
    return env


def seed(env: dict[str, str]) -> None:
    """The table, the key and the agents, through the service's own code (in this process, untimed)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        import boto3

        from chalicelib.rules import auth, kinds, records
        from chalicelib.store import Store, client_config, schema

        client = boto3.client("dynamodb", config=client_config())
        schema.create_table(client, TABLE)
        store = Store(client, TABLE)
        auth.register_key(store, DEVELOPER, KEY)
        auth.register_key(store, WRITER, WRITER_KEY)
        for n in range(AGENTS):
            records.create(
                store,
                kinds.KINDS["agent"],
                DEVELOPER,
                kinds.KINDS["agent"].create_model.model_validate(
                    {"name": f"Agent {n}", "about": "seeded by bench.coldstart", "metadata": {"n": n}}
                ),
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- figures ----------------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {
        "median": statistics.median(ordered),
        "p25": quartiles[0],
        "p75": quartiles[2],
        "min": ordered[0],
        "max": ordered[-1],
        "runs": len(ordered),
    }


def measure(runs: int, env: dict[str, str], source: Path) -> dict[str, list[dict[str, Any]]]:
    places = {"cached": (ROOT, env), "source": (source, {**env, "PYTHONDONTWRITEBYTECODE": "1"})}
    order = random.Random(SEED)
    log("  warm-up round (writes the checkout's bytecode caches; not counted)")
    for script, where in KINDS.values():
        run_child(script, *places[where])
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for n in range(runs):
        kinds = list(KINDS)
        order.shuffle(kinds)
        for kind in kinds:
            script, where = KINDS[kind]
            samples[kind].append(run_child(script, *places[where]))
        last = {kind: runs_[-1] for kind, runs_ in samples.items()}
        log(
            f"  round {n + 1}/{runs}: floor {last['floor']['import']['wall']:.0f} ms, "
            f"import app {last['import_app']['import']['wall']:.0f} ms "
            f"({last['import_app_source']['import']['wall']:.0f} ms without caches), "
            f"first GET {last['first_get']['first']['wall']:.0f} ms"
        )
    return samples


# Every figure: (name, kind of process, what in it); "import+first" adds the two of one process.
ROWS = [
    ("floor", "floor", "import"),
    ("floor_without_pydantic", "floor_without_pydantic", "import"),
    ("import_app", "import_app", "import"),
    ("import_app_source", "import_app_source", "import"),
    ("request_floor", "request_floor", "first"),
    ("request_floor_second", "request_floor", "second"),
    ("get_first", "first_get", "first"),
    ("get_second", "first_get", "second"),
    ("get_import_plus_first", "first_get", "import+first"),
    ("get_source_first", "first_get_source", "first"),
    ("get_source_import_plus_first", "first_get_source", "import+first"),
    ("post_first", "first_post", "first"),
    ("post_second", "first_post", "second"),
    ("post_import_plus_first", "first_post", "import+first"),
]


def figures(samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def value(sample: dict[str, Any], what: str, clock: str) -> float:
        if what == "import+first":
            return sample["import"][clock] + sample["first"][clock]
        return sample[what][clock]

    out: dict[str, Any] = {
        name: {clock: summary([value(s, what, clock) for s in samples[kind]]) for clock in ("wall", "cpu")}
        for name, kind, what in ROWS
    }
    both_floors = {
        clock: out["floor"][clock]["median"] + out["request_floor"][clock]["median"] for clock in ("wall", "cpu")
    }
    baselines = {
        "floor_without_pydantic": "floor",
        "import_app": "floor",
        "import_app_source": "floor",
        "get_first": "request_floor",
        "get_second": "request_floor_second",
        "get_source_first": "request_floor",
        "post_first": "request_floor",
        "post_second": "request_floor_second",
    }
    out["ratios"] = {
        name: {clock: out[name][clock]["median"] / out[base][clock]["median"] for clock in ("wall", "cpu")}
        for name, base in baselines.items()
    }
    for name in ("get_import_plus_first", "get_source_import_plus_first", "post_import_plus_first"):
        out["ratios"][name] = {clock: out[name][clock]["median"] / both_floors[clock] for clock in ("wall", "cpu")}
    out["both_floors"] = both_floors
    requests = ("first_get", "first_get_source", "first_post")
    out["heavy_loaded"] = sorted(
        {m for kind in ("import_app", "import_app_source", *requests) for s in samples[kind] for m in s["heavy"]}
    )
    out["chalicelib_after_import"] = samples["import_app"][-1]["chalicelib"]
    out["pydantic_after_import"] = any(s["pydantic"] for s in samples["import_app"])
    out["import_app_over_boto3_chalice"] = {
        clock: out["import_app"][clock]["median"] / out["floor_without_pydantic"][clock]["median"]
        for clock in ("wall", "cpu")
    }
    out["routes"] = samples["import_app"][-1]["routes"]
    out["app_files"] = sorted({s["file"] for kind in ("import_app", "import_app_source") for s in samples[kind]})
    out["loaded_by_first_get"] = samples["first_get"][-1]["loaded_by_first"]
    out["loaded_by_first_post"] = samples["first_post"][-1]["loaded_by_first"]
    out["answers"] = {
        kind: sorted({(tuple(s["statuses"]), tuple(s["items"])) for s in samples[kind]}) for kind in requests
    }
    return out


def targets(f: dict[str, Any]) -> list[dict[str, str]]:
    def target(ok: bool, what: str, detail: str) -> dict[str, str]:
        return {"status": "PASS" if ok else "FAIL", "target": what, "detail": detail}

    def ratio(name: str) -> tuple[bool, str]:
        r = f["ratios"][name]
        return r["wall"] <= TARGET_RATIO, (
            f"{_ms(f[name]['wall']['median'])} / {_ms(f['floor']['wall']['median'])} "
            f"= {r['wall']:.2f} (CPU time: {r['cpu']:.2f})"
        )

    gets = sorted(set(f["answers"]["first_get"]) | set(f["answers"]["first_get_source"]))
    posts = f["answers"]["first_post"]
    cached, source = ratio("import_app"), ratio("import_app_source")
    return [
        target(cached[0], f"`import app` takes at most {TARGET_RATIO} x the floor", cached[1]),
        target(
            source[0],
            f"`import app` compiling the app's own modules (no bytecode caches) takes at most "
            f"{TARGET_RATIO} x the floor",
            source[1],
        ),
        target(
            not f["heavy_loaded"],
            "`import app` loads none of " + ", ".join(HEAVY),
            ", ".join(f["heavy_loaded"]) or "none loaded",
        ),
        target(
            gets == [((200, 200), (AGENTS, AGENTS))],
            f"the first and second GET /agents answer 200 with the {AGENTS} seeded agents",
            f"(statuses, items) seen: {gets}",
        ),
        target(
            all(statuses == (201, 201) for statuses, _ in posts),
            "the first and second POST /agents answer 201",
            f"statuses seen: {sorted({s for s, _ in posts})}",
        ),
    ]


# --- the report ------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:,.1f} ms"


LABELS = {
    "floor": ("floor: `import boto3, chalice, pydantic`", ""),
    "floor_without_pydantic": ("`import boto3, chalice` (the floor less pydantic)", "x floor"),
    "import_app": ("`import app`", "x floor"),
    "import_app_source": ("`import app`, no caches", "x floor"),
    "request_floor": ("first-request floor: new DynamoDB client + one GetItem", ""),
    "request_floor_second": ("a second GetItem on that client", ""),
    "get_first": ("first GET /agents after `import app`", "x first-request floor"),
    "get_second": ("second GET /agents", "x a second GetItem"),
    "get_import_plus_first": ("`import app` + first GET /agents (one process)", "x both floors"),
    "get_source_first": ("first GET /agents, no caches", "x first-request floor"),
    "get_source_import_plus_first": ("`import app` + first GET /agents, no caches", "x both floors"),
    "post_first": ("first POST /agents after `import app`", "x first-request floor"),
    "post_second": ("second POST /agents", "x a second GetItem"),
    "post_import_plus_first": ("`import app` + first POST /agents (one process)", "x both floors"),
}


def markdown(report: dict[str, Any]) -> str:
    f = report["figures"]

    def lazily(modules: list[str]) -> str:
        return ", ".join(m.removeprefix("chalicelib.") for m in modules if m != "chalicelib") or "nothing more"

    out = [
        f"Run of {report['generated_at']} on {report['machine']}: {report['runs']} rounds, each one fresh "
        f"process per measurement, interleaved; milliseconds, wall-clock time unless said otherwise (CPU: the "
        f'process\'s own user + system time). "No caches": '
        f"the app's own modules compiled at import (no `__pycache__`), the rest as installed. Whole run "
        f"{report['total_seconds']:.0f} s.",
        "",
        "| measurement | median | p25-p75 | min-max | CPU median | ratio (CPU ratio) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, _, _ in ROWS:
        label, against = LABELS[name]
        wall, cpu = f[name]["wall"], f[name]["cpu"]
        ratio = f["ratios"].get(name)
        shown = f"{ratio['wall']:.2f} ({ratio['cpu']:.2f}) {against}" if ratio else "1.00"
        if name in ("import_app", "import_app_source"):
            shown = f"**{ratio['wall']:.2f}** ({ratio['cpu']:.2f}) {against}, target {TARGET_RATIO}"
        if name == "request_floor_second":
            shown = ""
        out.append(
            f"| {label} | {wall['median']:,.1f} | {wall['p25']:,.1f}-{wall['p75']:,.1f} | "
            f"{wall['min']:,.1f}-{wall['max']:,.1f} | {cpu['median']:,.1f} | {shown} |"
        )
    out += [
        "",
        f"Both floors together: {_ms(f['both_floors']['wall'])} ({_ms(f['both_floors']['cpu'])} CPU).",
        "",
        f"- Optional heavy modules loaded after `import app` ({', '.join(HEAVY)}): "
        f"{', '.join(f['heavy_loaded']) or 'none'}.",
        f"- pydantic imported by `import app`: {'yes' if f['pydantic_after_import'] else 'no'}; `import app` "
        f"against `import boto3, chalice`: {f['import_app_over_boto3_chalice']['wall']:.2f} "
        f"({f['import_app_over_boto3_chalice']['cpu']:.2f} CPU).",
        f"- chalicelib modules `import app` loads ({f['routes']} routes registered): "
        f"{lazily(f['chalicelib_after_import'])}.",
        f"- Loaded by the first GET /agents: {lazily(f['loaded_by_first_get'])}; by the first POST /agents: "
        f"{lazily(f['loaded_by_first_post'])}.",
        "",
        "### Targets",
        "",
    ]
    out += [f"- **{t['status']}** {t['target']}: {t['detail']}" for t in report["targets"]]
    return "\n".join(out)


HEADING = """## Cold start

Figures from `make bench` (`bench/coldstart.py`, run first; alone: `.venv/bin/python -m
bench.coldstart`): what a new Lambda process pays before it answers. Each figure is timed inside
a fresh process around what it measures, the processes interleaved round by round; the module
docstring says exactly what each one runs. Saved in `bench/results/coldstart.json`.

"""


_TIMED = ("import", "first", "second", "statuses", "items")  # what the JSON keeps of every sample


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--runs",
        type=int,
        default=int(os.environ.get("BENCH_COLDSTART_RUNS", str(DEFAULT_RUNS))),
        help=f"rounds of fresh processes (default {DEFAULT_RUNS})",
    )
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    log(f"bench.coldstart: {args.runs} rounds of {len(KINDS)} fresh processes ({', '.join(KINDS)})")
    with MotoServer() as endpoint, tempfile.TemporaryDirectory(prefix="coldstart-") as scratch:
        log(f"  moto's DynamoDB on {endpoint}")
        env = child_env(endpoint)
        seed(env)
        samples = measure(args.runs, env, source_copy(Path(scratch)))
    versions = ", ".join(
        f"{name} {package_metadata.version(name)}" for name in ("boto3", "chalice", "pydantic", "moto")
    )
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {versions}",
        "runs": args.runs,
        "target_ratio": TARGET_RATIO,
        "heavy_modules": list(HEAVY),
        "figures": figures(samples),
        "samples": {
            kind: [{k: v for k, v in sample.items() if k in _TIMED} for sample in runs]
            for kind, runs in samples.items()
        },
    }
    report["targets"] = targets(report["figures"])
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    block = markdown(report)
    update_doc(block, BEGIN, END, heading=HEADING)
    publish(report, block, RESULTS, "cold-start figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
