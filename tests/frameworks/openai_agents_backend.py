"""A pytest plugin for the OpenAI Agents SDK's own session tests (their sdist, fetched at the
pinned version by make test, run unmodified): it serves this service in-process on moto and puts
a backend of it where those tests construct their SQLite session, so every `SQLiteSession(id,
db_path)` they make is a session kept by the service. Loaded with `-p openai_agents_backend` by
tests/frameworks/test_framework_suites.py."""

from __future__ import annotations

import os

import pytest

SERVICE: dict[str, str] = {}


def _serve() -> None:
    import boto3
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "x")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["SESSIONS_TABLE"] = "sdk-suite"
    mock = mock_aws()
    mock.start()
    from chalicelib.rules import auth
    from chalicelib.store import get_store, schema

    schema.create_table(boto3.client("dynamodb"), "sdk-suite")
    auth.register_key(get_store(), "suite", "key-suite")
    import app as app_module
    from infra.local_gateway import serve_in_thread

    SERVICE.update(url=serve_in_thread(app_module.app).url, key="key-suite")


def _backend():
    from agents.memory.session_settings import SessionSettings, coerce_session_settings

    from sessions_client import AsyncClient
    from sessions_client.integrations.openai_agents import ServiceSession

    class ServiceBackedSession:
        """Constructed as the SDK's SQLiteSession is; each (db_path, session_id) is one SDK
        session kept by the service. Each call runs a ServiceSession on a client of its own: the
        tests call from several event loops and threads at once."""

        def __init__(self, session_id, db_path=":memory:", create_tables=True, session_settings=None, **_):
            self.session_id = session_id
            self.session_settings = (
                coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
            )
            self._scope = f"{db_path}|{session_id}"
            self._service_id = None

        async def _call(self, name, *args):
            async with AsyncClient(SERVICE["key"], SERVICE["url"]) as client:
                inner = ServiceSession(self._scope, client, session_settings=self.session_settings)
                inner._service_id = self._service_id
                result = await getattr(inner, name)(*args)
                self._service_id = inner._service_id
                return result

        async def get_items(self, limit=None):
            return await self._call("get_items", limit)

        async def add_items(self, items):
            return await self._call("add_items", items)

        async def pop_item(self):
            return await self._call("pop_item")

        async def clear_session(self):
            return await self._call("clear_session")

        def close(self):
            pass

    return ServiceBackedSession


def pytest_configure(config: pytest.Config) -> None:
    import logging

    import agents
    import agents.memory

    logging.getLogger("sessions").setLevel(logging.WARNING)  # the service's request log
    _serve()
    backend = _backend()
    agents.SQLiteSession = backend
    agents.memory.SQLiteSession = backend
