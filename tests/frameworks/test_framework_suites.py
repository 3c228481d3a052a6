"""The frameworks' own tests, unmodified, against this service: each framework's source
distribution at its pinned version (fetched by make test into .local/sdists, never copied into
this repository), run with a plugin that puts the service where the tests construct their store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDISTS = ROOT / ".local" / "sdists"
OPENAI_AGENTS = SDISTS / "openai_agents-0.25.0"
STRANDS = SDISTS / "strands_agents-1.65.0"

# The SDK's session tests that test SQLite's own machinery, which a service has none of: its
# per-thread connections and their reaping, its file lock, rows corrupted through sqlite3 behind
# the session's back, rollbacks of its write transactions, and a commit paused inside sqlite3.
# Every other test of the file (the Runner with sessions, every runner method, limits, pop,
# clear, isolation, settings, concurrent writers) runs against the service.
SQLITE_MACHINERY = [
    "test_sqlite_session_close_closes_worker_thread_connections",
    "test_sqlite_session_reaps_connections_from_exited_worker_threads",
    "test_sqlite_session_closes_retired_connections_before_the_next_allocation",
    "test_sqlite_session_keeps_connections_of_live_worker_threads",
    "test_sqlite_session_closed_rejects_empty_add_items",  # SQLiteSession.close()'s own error
    "test_sqlite_session_pop_item_skips_corrupt_most_recent",
    "test_sqlite_session_pop_item_returns_none_after_dropping_only_corrupt_rows",
    "test_sqlite_session_get_items_limit_skips_corrupt_newest_rows",
    "test_sqlite_session_get_items_session_settings_limit_skips_corrupt_rows",
    "test_sqlite_session_file_lock_is_shared_across_instances",
    "test_sqlite_session_failed_add_items_releases_write_lock",
    "test_sqlite_session_failed_clear_session_rolls_back",
    "test_sqlite_session_failed_pop_item_releases_write_lock",
    "test_sqlite_session_rollback_failure_evicts_connection",
    "test_sqlite_session_close_retries_quarantined_connection",
    "test_sqlite_session_post_commit_cancellation_propagates_after_known_outcome",
]


def run_suite(sdist: Path, plugin: str, tests: str, deselected: list[str]) -> tuple[int, str]:
    if not sdist.is_dir():
        pytest.fail(f"{sdist} is missing: make test fetches it (make {sdist.relative_to(ROOT)}/.unpacked)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(ROOT), str(sdist)])}
    command = [sys.executable, "-m", "pytest", "-q", "-p", plugin, "-p", "no:cacheprovider", "-n", "2", tests]
    command += ["-k", " and ".join(f"not {name}" for name in deselected)] if deselected else []
    done = subprocess.run(command, cwd=sdist, env=env, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_openai_agents_sdk_session_tests_pass_against_the_service():
    code, output = run_suite(OPENAI_AGENTS, "openai_agents_backend", "tests/memory/test_session.py", SQLITE_MACHINERY)
    summary = re.search(r"(\d+) passed", output)
    assert code == 0 and summary, output
    assert int(summary.group(1)) >= 37, output  # every test of the file but SQLite's machinery


def test_the_strands_session_manager_tests_pass_against_the_service_as_its_repository():
    """tests/strands/session/test_repository_session_manager.py: the session manager over a
    third-party repository (theirs an in-memory one), every test of it: agents restored, messages
    appended and listed, broken tool uses fixed, multi-agents and bidirectional agents synced."""
    code, output = run_suite(STRANDS, "strands_backend", "tests/strands/session/test_repository_session_manager.py", [])
    summary = re.search(r"(\d+) passed", output)
    assert code == 0 and summary and "failed" not in output, output
    assert int(summary.group(1)) >= 51, output
