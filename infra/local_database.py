"""The database of `make run`, of the real-engine tests and of the bench, in a process of its own:
DynamoDB Local (Amazon's engine, infra/dynamodb_local.py), or moto's server with our fixes
(infra/moto_dynamodb.py) where Java or the package cannot be had.

`SESSIONS_LOCAL_DB` chooses: `dynamodb-local`, `moto`, or unset for DynamoDB Local when it can
run and moto's server otherwise (`choose` says why in one line).
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra import dynamodb_local

DYNAMODB_LOCAL = "dynamodb-local"
MOTO = "moto"
ENGINES = (DYNAMODB_LOCAL, MOTO)
ROOT = Path(__file__).resolve().parent.parent


class StartFailed(Exception):
    """The database could not be started; the message says why, in one line."""


@dataclass
class Database:
    engine: str  # DYNAMODB_LOCAL or MOTO
    process: subprocess.Popen
    endpoint: str
    data_dir: Path | None  # where its data lives; None: in memory, gone when it stops

    @property
    def description(self) -> str:
        if self.engine == DYNAMODB_LOCAL:
            return f"DynamoDB Local {dynamodb_local.ENGINE_VERSION}"
        return "moto's DynamoDB server"

    def stop(self, seconds: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def choose(asked: str | None) -> tuple[str, str | None]:
    """The engine to run and, when it is a fallback, the one line that says why. Raises
    StartFailed when DynamoDB Local was asked for by name and cannot run."""
    if asked == MOTO:
        return MOTO, None
    try:
        dynamodb_local.java()
        dynamodb_local.install()
    except dynamodb_local.Unavailable as missing:
        if asked == DYNAMODB_LOCAL:
            raise StartFailed(f"SESSIONS_LOCAL_DB=dynamodb-local, but {missing}") from None
        return MOTO, (
            f"DynamoDB Local is not available ({missing}); "
            "using moto's server instead, which keeps nothing across restarts"
        )
    return DYNAMODB_LOCAL, None


def start(engine: str, data_dir: Path | None = None, log: Path | None = None) -> Database:
    """Start the engine on a free loopback port and wait until it answers. Its process is in a
    session of its own (a Ctrl-C or a SIGTERM to our group reaches us, and we stop it), and is
    told by Linux to stop if we die without doing so."""
    port = free_port()
    if engine == DYNAMODB_LOCAL:
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
        try:
            command = dynamodb_local.command(port, data_dir)
        except dynamodb_local.Unavailable as missing:
            raise StartFailed(str(missing)) from None
        cwd = dynamodb_local.HOME
    else:
        command = [sys.executable, "-m", "infra.moto_dynamodb", "-H", "127.0.0.1", "-p", str(port)]
        cwd, data_dir = ROOT, None
    output = open(log, "ab") if log is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        if log is not None:
            output.close()
    database = Database(engine, process, f"http://127.0.0.1:{port}", data_dir)
    try:
        wait_until_answering(database.endpoint, process, seconds=60)
    except StartFailed:
        database.stop()
        raise
    return database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(endpoint: str, process: subprocess.Popen | None = None, seconds: float = 30) -> None:
    """Until something answers HTTP at endpoint (any status: DynamoDB answers GET / with an error)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StartFailed(f"the database exited with code {process.returncode} while starting")
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise StartFailed(f"nothing answered at {endpoint} within {seconds:.0f} s")


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it if the thread that started it dies (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass
