"""A pytest plugin for Strands Agents' own session tests (its sdist, fetched at the pinned version
by make test, run unmodified): it serves this service in-process on moto and puts a repository of
it where those tests construct their in-memory one (tests/fixtures/mock_session_repository.py's
MockedSessionRepository), each instance as a developer of its own, as each of theirs is empty.
Loaded with `-p strands_backend` by tests/frameworks/test_framework_suites.py."""

from __future__ import annotations

import itertools
import logging

import pytest
from openai_agents_backend import SERVICE, _serve


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("sessions").setLevel(logging.WARNING)
    _serve()
    from chalicelib.rules import auth
    from chalicelib.store import get_store
    from sessions_client import Client
    from sessions_client.integrations.strands import ServiceSessionRepository

    developers = itertools.count()

    class ServiceBackedRepository(ServiceSessionRepository):
        def __init__(self) -> None:
            n = next(developers)
            auth.register_key(get_store(), f"strands{n}", f"key-strands-{n}")
            super().__init__(Client(f"key-strands-{n}", SERVICE["url"]))

    import tests.fixtures.mock_session_repository as fixture

    fixture.MockedSessionRepository = ServiceBackedRepository
