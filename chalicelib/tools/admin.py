"""`sessions-admin`: the operators' console (docs/operations.md).

    sessions-admin create-key --developer alice          # prints the key, this once
    sessions-admin list-keys --developer alice [--prefix sk_ab] [--json]
    sessions-admin revoke-key --developer alice sk_abcdefg     # a prefix, a hash prefix or the whole key
    sessions-admin export --developer alice [--output alice.jsonl]
    sessions-admin import --developer alice [--input alice.jsonl] [--replace]
    sessions-admin check --developer alice
    sessions-admin create-table

Global options (before or after the command): --table (SESSIONS_TABLE, else "sessions"),
--endpoint-url (else boto3's own AWS_ENDPOINT_URL[_DYNAMODB]), --region, --progress.

Standard library and boto3 only. Nothing in the request path imports this module, so it costs a
Lambda nothing. stdout carries only what a script consumes (a key, a list, an export, a check's
result); notes, progress and errors go to stderr. Exit codes: 0 done; 1 done, but the answer is
"no" (no single key matched, the check found problems); 2 the command could not run (bad input,
missing table, DynamoDB refused or unreachable: one line on stderr, never a traceback); 130
interrupted; 141 stdout closed early (`export | head`), as a shell reports SIGPIPE.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import IO, Any

from chalicelib.rules import auth
from chalicelib.shared import clock
from chalicelib.shared.errors import Conflict, NotFound
from chalicelib.store import Store, StoreError, StoreFailed, keys, scans, schema
from chalicelib.store.client import operator_client, operator_region
from chalicelib.store.codec import key_of, only_key
from chalicelib.tools import transfer

EXIT_OK, EXIT_NO, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


class Fail(Exception):
    """Stop with a one-line message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Progress:
    """One status line on stderr, redrawn in place (`\\r`) at most ten times a second: items done,
    of how many when known, and the rate. Drawn only when enabled (stderr is a TTY, or --progress)."""

    line_open = False  # some status line is on stderr without its newline yet

    def __init__(self, label: str, enabled: bool, total: int | None = None) -> None:
        self.label, self.enabled, self.total = label, enabled, total
        self.count, self.scanned = 0, None
        self.started = self._drawn = time.monotonic()
        self._width = 0

    def add(self, items: int, scanned: int | None = None) -> None:
        self.count += items
        if scanned is not None:
            self.scanned = (self.scanned or 0) + scanned
        if self.enabled and time.monotonic() - self._drawn >= 0.1:
            self._draw()

    def finish(self) -> None:
        if self.enabled:
            self._draw()
            _end_line()

    def _draw(self) -> None:
        self._drawn = time.monotonic()
        text = f"{self.label}: {self.count:,}"
        if self.total:
            text += f" of {self.total:,} ({100 * self.count // self.total}%)"
        text += " items"
        if self.scanned is not None:
            text += f", {self.scanned:,} scanned"
        text += f", {self.count / max(self._drawn - self.started, 1e-6):,.0f}/s"
        sys.stderr.write("\r" + text.ljust(self._width))
        sys.stderr.flush()
        self._width = len(text)
        Progress.line_open = True


def _end_line() -> None:
    if Progress.line_open:
        sys.stderr.write("\n")
        sys.stderr.flush()
        Progress.line_open = False


# --- the commands ---------------------------------------------------------------------------------


def create_key(args: argparse.Namespace) -> int:
    key = auth.create_key(_store(args), args.developer)
    print(key)
    _note(
        f"API key for developer {args.developer} created. It is shown this once and cannot be shown "
        f"again: only its SHA-256 and its prefix {key[: auth.PREFIX_CHARS]} are stored."
    )
    return EXIT_OK


def revoke_key(args: argparse.Namespace) -> int:
    try:
        revoked = auth.revoke_key(_store(args), args.developer, args.prefix)
    except NotFound as exc:
        raise Fail(f"{exc.message} (list-keys shows them); nothing was revoked", EXIT_NO) from None
    except Conflict as exc:  # the delete deleted nothing: never say "revoked" then
        raise Fail(exc.message, EXIT_NO) from None
    print(f"revoked {revoked['prefix']} (hash {revoked['key_hash'][:16]}, created {revoked['created_at']})")
    return EXIT_OK


def list_keys(args: argparse.Namespace) -> int:
    prefix = args.prefix or ""
    # The same match as revoke-key's, so `list-keys --prefix P` shows what `revoke-key P` would revoke.
    keys = [
        {"prefix": k["prefix"], "hash": k["key_hash"][:16], "created_at": k["created_at"]}
        for k in auth.list_keys(_store(args), args.developer)
        if k["prefix"].startswith(prefix) or k["key_hash"].startswith(prefix)
    ]
    if args.json:
        print(json.dumps(keys, ensure_ascii=False))
    else:
        for key in keys:
            print(f"{key['prefix']:<12} {key['hash']}  {key['created_at']}")
    return EXIT_OK


def export(args: argparse.Namespace) -> int:
    store = _store(args)
    progress = Progress(f"export {args.developer}", _progress_wanted(args))
    lines: list[tuple[tuple[str, str], str]] = []
    for items, scanned in scans.developer_pages_typed(store, args.developer):
        lines += [(key_of(item), transfer.item_line(item)) for item in items]
        progress.add(len(items), scanned)
    progress.finish()
    lines.sort()
    text = (
        "\n".join([transfer.header(args.developer, store.table, clock.now(), len(lines)), *(line for _, line in lines)])
        + "\n"
    )
    _write_output(args.output, text.encode("utf-8"))
    if not lines:
        _note(f"warning: developer {args.developer} has no data in table {store.table}")
    _note(
        f"exported {len(lines):,} items of developer {args.developer} from table {store.table}"
        + (f" to {args.output}" if args.output not in (None, "-") else "")
    )
    return EXIT_OK


def import_(args: argparse.Namespace) -> int:
    numbered = _read_input(args.input, args.developer)
    items = [item for _, item in numbered]
    store = _store(args)
    # A key record must never take over a key hash another developer holds.
    for number, item in numbered:
        pk, sk = key_of(item)
        if keys.parse(pk, sk).what == "api_key":
            owner = store.developer_for_key(pk[len(keys.API_KEY_PREFIX) :])
            if owner not in (None, args.developer):
                raise Fail(
                    f"line {number}: that API key belongs to developer {owner!r} in table "
                    f"{store.table}; nothing was written"
                )
    progress = Progress(f"read {args.developer}'s current data", _progress_wanted(args))
    existing: list[dict[str, Any]] = []
    for page, scanned in scans.developer_pages_typed(store, args.developer):
        existing += [only_key(item) for item in page]
        progress.add(len(page), scanned)
    progress.finish()
    if existing and not args.replace:
        raise Fail(
            f"developer {args.developer} already has {len(existing):,} items in table {store.table}; "
            "--replace replaces them with the file's (export them first); nothing was written"
        )
    incoming = {key_of(item) for item in items}
    stale = [key for key in existing if key_of(key) not in incoming]
    written = deleted = 0
    try:
        progress = Progress(f"delete {args.developer}'s items not in the file", _progress_wanted(args), len(stale))
        for start in range(0, len(stale), 100):
            scans.delete_items(store, stale[start : start + 100])
            deleted += len(stale[start : start + 100])
            progress.add(len(stale[start : start + 100]))
        if stale:
            progress.finish()
        progress = Progress(f"import {args.developer}", _progress_wanted(args), len(items))
        for start in range(0, len(items), 100):
            scans.put_items(store, items[start : start + 100])
            written += len(items[start : start + 100])
            progress.add(len(items[start : start + 100]))
        progress.finish()
    except BaseException:
        _note(
            f"the import stopped after deleting {deleted:,} of {len(stale):,} items and writing {written:,} "
            f"of {len(items):,}: developer {args.developer}'s data is partial. Run the same import "
            "again with --replace to finish it."
        )
        raise
    _note(
        f"imported {written:,} items of developer {args.developer} into table {store.table}"
        + (f", deleted {deleted:,} not in the file" if args.replace else "")
    )
    return EXIT_OK


def check(args: argparse.Namespace) -> int:
    from chalicelib.tools import consistency  # the service's rules and models: only this command needs them

    progress = Progress(f"check {args.developer}", _progress_wanted(args))
    result = consistency.check(_store(args), args.developer, progress=lambda: progress.add(1))
    progress.finish()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    problems = sum(len(result[name]) for name in consistency.PROBLEMS)
    if problems:
        _note(f"developer {args.developer}: {problems} problems ({', '.join(consistency.PROBLEMS)} above)")
        return EXIT_NO
    return EXIT_OK


def replay_failed_cascades(args: argparse.Namespace) -> int:
    """Replay what the cascades function gave up on (chalicelib/tools/replay.py)."""
    import boto3

    from chalicelib.tools import replay

    endpoint = getattr(args, "endpoint_url", None)
    streams = boto3.client("dynamodbstreams", region_name=_region(args), endpoint_url=endpoint)
    sqs = boto3.client("sqs", region_name=_region(args))
    batches, records = replay.replay_failed(_store(args), streams, sqs, args.queue_url)
    _note(f"{batches} failed batches replayed ({records} stream records); the queue is empty")
    return EXIT_OK


def finish_deletes(args: argparse.Namespace) -> int:
    """Complete the cascades that interrupted DELETEs left behind (a retried DELETE does this too;
    this is the sweep for the ones nobody retried)."""
    from chalicelib.rules import deletes  # the service's rules: only this command needs them
    from chalicelib.shared.errors import DeletionInProgress

    try:
        finished = deletes.finish_pending_deletes(_store(args), args.developer, budget_seconds=args.budget)
    except DeletionInProgress:
        _note(
            f"developer {args.developer}: the {args.budget:g} s budget ran out with deletes still pending; "
            "run it again to continue"
        )
        return EXIT_NO
    _note(f"developer {args.developer}: {finished} pending deletes finished")
    return EXIT_OK


def create_table(args: argparse.Namespace) -> int:
    client = _client(args)
    table = _table(args)
    schema.create_table(client, table)
    _note(f"table {table} is ready")
    return EXIT_OK


# --- plumbing -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    try:
        return args.command(args)
    except Fail as exc:
        _note(f"error: {exc}")
        return exc.code
    except StoreFailed as exc:
        _note(f"error: {_refusal(args, exc)}")
        return EXIT_ERROR
    except StoreError as exc:  # no credentials or region, unreachable endpoint, timeouts
        _note(f"error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _note("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `export | head`: the reader has gone, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second one at exit
        return EXIT_BROKEN_PIPE


def _parser() -> argparse.ArgumentParser:
    # The global options are accepted before or after the command; SUPPRESS keeps a subcommand's
    # absent copy from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--table",
        default=argparse.SUPPRESS,
        help=f"the table (default: $SESSIONS_TABLE, else {schema.DEFAULT_TABLE_NAME!r})",
    )
    common.add_argument(
        "--endpoint-url",
        default=argparse.SUPPRESS,
        help="a DynamoDB endpoint (default: boto3's, which honours AWS_ENDPOINT_URL_DYNAMODB)",
    )
    common.add_argument(
        "--region",
        default=argparse.SUPPRESS,
        help="the AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1)",
    )
    common.add_argument(
        "--progress",
        action="store_true",
        default=argparse.SUPPRESS,
        help="draw progress on stderr even when it is not a terminal",
    )
    parser = argparse.ArgumentParser(
        prog="sessions-admin",
        parents=[common],
        description="Operate the sessions service's table: API keys, export, "
        "import, consistency check (docs/operations.md).",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, run: Any, help: str, developer: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(command=run)
        if developer:
            sub.add_argument("--developer", required=True, type=_developer_id, help="the developer id")
        return sub

    command("create-key", create_key, "create an API key and print it, this once")
    sub = command(
        "revoke-key", revoke_key, "revoke the one key that is KEY whole, or whose prefix (or hash) starts with KEY"
    )
    sub.add_argument("prefix", metavar="KEY")
    sub = command("list-keys", list_keys, "list a developer's keys: prefix, hash, created_at (never a key)")
    sub.add_argument("--prefix", help="only keys whose prefix (or hash) starts with this")
    sub.add_argument("--json", action="store_true", help="one JSON array")
    sub = command("export", export, "write a developer's data as JSON Lines")
    sub.add_argument("--output", "-o", help="the file to write (default: stdout)")
    sub = command("import", import_, "write an export back exactly")
    sub.add_argument("--input", "-i", help="the file to read (default: stdin)")
    sub.add_argument(
        "--replace",
        action="store_true",
        help="replace the developer's current data: afterwards it is exactly the file's",
    )
    command("check", check, "check that a developer's index entries and records agree")
    sub = command("finish-deletes", finish_deletes, "complete the cascading deletes interrupted DELETEs left")
    sub.add_argument("--budget", type=float, default=3600.0, help="seconds to work before stopping (3600)")
    sub = command(
        "replay-failed-cascades",
        replay_failed_cascades,
        "hand the stream batches the cascades function gave up on to it again, from its failure queue",
        developer=False,
    )
    sub.add_argument("--queue-url", required=True, help="the stack's CascadesFailedQueueUrl output")
    command("create-table", create_table, "create the table (and its TTL) unless it exists", developer=False)
    return parser


def _developer_id(value: str) -> str:
    if not auth.DEVELOPER_ID.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a developer id (1 to 64 letters, digits, _ . -)")
    return value


def _table(args: argparse.Namespace) -> str:
    return getattr(args, "table", None) or schema.table_name()


def _progress_wanted(args: argparse.Namespace) -> bool:
    return getattr(args, "progress", False) or sys.stderr.isatty()


def _region(args: argparse.Namespace) -> str:
    return operator_region(getattr(args, "region", None))


def _client(args: argparse.Namespace) -> Any:
    return operator_client(getattr(args, "endpoint_url", None), _region(args))


def _store(args: argparse.Namespace) -> Store:
    return Store(_client(args), _table(args))


def _refusal(args: argparse.Namespace, exc: StoreFailed) -> str:
    if exc.code == "ResourceNotFoundException":
        where = (
            getattr(args, "endpoint_url", None)
            or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
            or os.environ.get("AWS_ENDPOINT_URL")
            or "AWS"
        )
        return (
            f"table {_table(args)!r} not found in region {_region(args)} at {where}; "
            "check --table/--region/--endpoint-url, or create it with `sessions-admin create-table`"
        )
    return str(exc)


def _read_input(path: str | None, developer: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        if path in (None, "-"):
            return transfer.read(sys.stdin.buffer, developer)
        with open(path, "rb") as stream:
            return transfer.read(stream, developer)
    except transfer.BadFile as exc:
        raise Fail(f"{path or 'stdin'}: {exc}; nothing was written") from None
    except OSError as exc:
        raise Fail(f"cannot read {path}: {exc.strerror}") from None


def _write_output(path: str | None, data: bytes) -> None:
    """stdout, or a file written whole under a temporary name and then renamed, readable by its
    owner only (an export holds customer data): a failed export never leaves a file behind."""
    if path in (None, "-"):
        stream: IO[bytes] = getattr(sys.stdout, "buffer", None) or sys.stdout  # type: ignore[assignment]
        sys.stdout.flush()
        stream.write(data)
        stream.flush()
        return
    partial = f"{path}.partial"
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.replace(partial, path)
    except OSError as exc:
        if os.path.exists(partial):
            os.unlink(partial)
        raise Fail(f"cannot write {path}: {exc.strerror}") from None


def _note(message: str) -> None:
    _end_line()  # after a progress line cut short, the message starts a line of its own
    print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
