"""`make run`: the service on this machine, on Amazon's own DynamoDB engine.

Checks its settings and binds its port first, so a mistake is one line before anything starts.
Then it starts the database in its own process (infra/local_database.py: DynamoDB Local with its
data in SESSIONS_DATA_DIR, or moto's server where Java or the package cannot be had; none when
AWS_ENDPOINT_URL_DYNAMODB names one), creates the table if absent, registers the API keys of
SESSIONS_API_KEYS (`developer:key,developer:key`) or the key of developer `local`, which lives as
long as the data, and serves the app through infra/local_gateway.py on 127.0.0.1:$PORT.

Ctrl-C or SIGTERM (to it or to its process group) stops the database too. If the database dies,
it says so in one line and exits 1. `--empty` deletes the data first (`make run-empty`).
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra import local_database  # noqa: E402
from infra.local_database import Database, StartFailed  # noqa: E402

DEFAULT_DATA_DIR = ROOT / ".local" / "data"
KEY_FILE = "api-key-local"  # the key of developer `local`, beside the data it opens
DATABASE_FILE = "shared-local-instance.db"  # DynamoDB Local's one SQLite file under -sharedDb


class StartupError(Exception):
    """A setting or the machine stops `make run` before it serves; the message is one line."""


@dataclass(frozen=True)
class Settings:
    port: int
    api_keys: list[tuple[str, str]] | None  # None: the key of developer `local`
    table: str
    engine: str | None  # SESSIONS_LOCAL_DB; None: DynamoDB Local if it can run
    endpoint: str | None  # AWS_ENDPOINT_URL_DYNAMODB: use it, start nothing
    data_dir: Path
    empty: bool


def read_settings(environ: dict[str, str], argv: list[str]) -> Settings:
    from chalicelib.rules import auth, records
    from chalicelib.store import schema

    unknown = [arg for arg in argv if arg != "--empty"]
    if unknown:
        raise StartupError(f"unknown argument {unknown[0]!r}; the only one is --empty")
    raw_port = environ.get("PORT", "8000")
    if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        raise StartupError(f"PORT must be a port number from 1 to 65535; got {raw_port!r}")
    spec = environ.get("SESSIONS_API_KEYS", "")
    try:
        api_keys = auth.parse_key_spec(spec) if spec.strip() else None
    except ValueError as error:
        raise StartupError(str(error)) from None
    if spec.strip() and not api_keys:
        raise StartupError("SESSIONS_API_KEYS names no key; want developer:key[,developer:key]")
    try:
        records.parse_default_ttl(environ.get("SESSIONS_DEFAULT_TTL", ""))
    except ValueError as error:
        raise StartupError(str(error)) from None
    engine = environ.get("SESSIONS_LOCAL_DB") or None
    if engine is not None and engine not in local_database.ENGINES:
        raise StartupError(f"SESSIONS_LOCAL_DB must be {' or '.join(local_database.ENGINES)}; got {engine!r}")
    table = environ.get("SESSIONS_TABLE") or schema.DEFAULT_TABLE_NAME
    if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", table):
        raise StartupError(f"SESSIONS_TABLE must be 3 to 255 letters, digits, _ . - (DynamoDB's rule); got {table!r}")
    data_dir = Path(environ.get("SESSIONS_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()
    return Settings(
        int(raw_port),
        api_keys,
        table,
        engine,
        environ.get("AWS_ENDPOINT_URL_DYNAMODB") or None,
        data_dir,
        "--empty" in argv,
    )


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold the data folder for this process: two engines on one SQLite file would corrupt it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(data_dir / ".lock", "w")
    except OSError as error:
        raise StartupError(f"cannot use the data folder {data_dir}: {error.strerror}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StartupError(
            f"the data folder {data_dir} is in use by another make run; "
            "stop it, or set SESSIONS_DATA_DIR to another folder"
        ) from None
    return lock


def empty(data_dir: Path) -> None:
    for name in (DATABASE_FILE, KEY_FILE):
        (data_dir / name).unlink(missing_ok=True)


def local_key(data_dir: Path | None) -> str:
    """Developer `local`'s key: the one kept beside the data, else a new one (kept there if the
    data is kept)."""
    from chalicelib.rules import auth

    path = data_dir / KEY_FILE if data_dir is not None else None
    if path is not None and path.exists():
        kept = path.read_text().strip()
        if kept:
            return kept
    key = auth.new_key()
    if path is not None:
        path.touch(mode=0o600)
        path.write_text(key + "\n")
    return key


def register(pairs: list[tuple[str, str]]) -> None:
    """Register each key (one already this developer's stays as it is, created_at included). A
    key the data says is another developer's is refused: a key never changes owner."""
    from chalicelib.rules import auth
    from chalicelib.store import get_store

    for developer, key in pairs:
        try:
            auth.register_key(get_store(), developer, key)
        except auth.KeyHeldByAnother as taken:
            raise StartupError(
                f"SESSIONS_API_KEYS gives developer {developer!r} a key that is "
                f"developer {taken.owner!r}'s in this data; give {developer!r} another key"
            ) from None


class Watch:
    """Notices the database process dying while we serve, says so and stops the server."""

    def __init__(self, database: Database, server: object) -> None:
        self.database, self.server = database, server
        self.stopping = False
        self.died_with: int | None = None
        threading.Thread(target=self._wait, daemon=True, name="watch-database").start()

    def _wait(self) -> None:
        code = self.database.process.wait()
        if self.stopping:
            return
        self.died_with = code
        print(
            f"make run: the database ({self.database.description}, pid {self.database.process.pid}) "
            f"exited with code {code}; stopping",
            file=sys.stderr,
            flush=True,
        )
        self.server.shutdown()  # type: ignore[attr-defined]


def say(line: str) -> None:
    print(line, flush=True)


def serve(settings: Settings) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    import app as app_module
    from infra.local_gateway import GatewayServer

    try:
        server = GatewayServer(("127.0.0.1", settings.port), app_module.app)
    except OSError as error:
        raise StartupError(
            f"cannot serve on 127.0.0.1:{settings.port}: {error.strerror}; set PORT to a free port"
        ) from None
    os.environ["SESSIONS_TABLE"] = settings.table  # the app reads it too
    database: Database | None = None
    lock: IO[str] | None = None
    watch: Watch | None = None
    cascades = None
    try:
        if settings.endpoint is not None:
            local_database.wait_until_answering(settings.endpoint)
            say(f"Database: the one at {settings.endpoint} (AWS_ENDPOINT_URL_DYNAMODB); nothing started")
        else:
            engine, fallback = local_database.choose(settings.engine)
            if fallback:
                print(f"make run: {fallback}", file=sys.stderr, flush=True)
            data_dir = settings.data_dir if engine == local_database.DYNAMODB_LOCAL else None
            if data_dir is not None:
                lock = lock_data_dir(data_dir)
                if settings.empty:
                    empty(data_dir)
            database = local_database.start(engine, data_dir)
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = database.endpoint
            kept = f"data in {data_dir}" if data_dir is not None else "data in memory, gone when it stops"
            say(f"Database: {database.description} at {database.endpoint}, {kept}")
        import boto3

        from chalicelib.store import schema

        try:
            schema.create_table(boto3.client("dynamodb"), settings.table)
            pairs = settings.api_keys or [("local", local_key(database.data_dir if database else None))]
            register(pairs)
        except (BotoCoreError, ClientError) as error:
            raise StartupError(f"the database refused or did not answer: {error}") from None
        if settings.api_keys is None:
            say(f"API key for developer 'local': {pairs[0][1]}")
        if os.environ.get("SESSIONS_CASCADES", "").strip().lower() == "request":  # as before the stream
            say("Cascades: in the request (SESSIONS_CASCADES=request); expired items stay")
        else:
            from infra.local_stream import LocalCascades

            try:
                cascades = LocalCascades(os.environ["AWS_ENDPOINT_URL_DYNAMODB"], settings.table)
                cascades.start()
            except (BotoCoreError, ClientError) as error:
                raise StartupError(f"the table's stream cannot be read: {error}") from None
            os.environ["SESSIONS_CASCADES"] = "stream"  # DELETEs answer at once; the stream finishes them
            say("Cascades: the table's stream, consumed here; expired items removed as TTL would")
        if database is not None:
            watch = Watch(database, server)
        say(f"Serving the sessions API at {server.url} (table {settings.table})")
        server.serve_forever()
        return 1 if watch is not None and watch.died_with is not None else 0
    except StartFailed as error:
        raise StartupError(str(error)) from None
    except KeyboardInterrupt:
        return 0
    finally:
        if cascades is not None:
            cascades.stop()
        if watch is not None:
            watch.stopping = True
        server.server_close()
        if database is not None:
            database.stop()
        if lock is not None:
            lock.close()


_stopping = threading.Event()


def _stop_once(*_: object) -> None:
    """The first SIGTERM unwinds through serve's finally; any later one does nothing. make forwards
    its own SIGTERM to us beside the one sent to the process group, and a second SystemExit raised
    while Python shuts its threads down printed "Exception ignored in: <module 'threading'>"."""
    if _stopping.is_set():
        return
    _stopping.set()
    sys.exit(0)


def _ignore_signals() -> None:
    """From here to the exit, SIGTERM and SIGINT are ignored by the OS itself: Python's shutdown
    puts its own handlers back to the default, under which one more SIGTERM would kill us (-15)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(signum, signal.SIG_IGN)
        except OSError:  # one arrived just now, in the swap: it is the one being ignored
            pass


def main(argv: list[str] | None = None) -> int:
    # Local credentials and region: the local engines take any; a real endpoint gets the environment's.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # SIGTERM (to us or our process group) unwinds like Ctrl-C, through serve's finally. Ctrl-C is
    # KeyboardInterrupt even when our parent ignored SIGINT (a background job, a test runner's
    # worker), which Python would otherwise leave ignored.
    signal.signal(signal.SIGTERM, _stop_once)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return serve(read_settings(dict(os.environ), sys.argv[1:] if argv is None else argv))
    except StartupError as error:
        print(f"make run: {error}", file=sys.stderr, flush=True)
        return 2
    finally:
        _ignore_signals()


if __name__ == "__main__":
    sys.exit(main())
