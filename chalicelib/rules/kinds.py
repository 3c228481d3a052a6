"""What differs between agents, users and sessions: their models, list queries, defaults and the
parents they name (the fields that never change are their patch models' `immutable`). Everything
else (records.py, deletes.py, lists.py) is shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from chalicelib.rules import models
from chalicelib.rules.parameters import ListQuery, SessionListQuery
from chalicelib.store import LAST_MESSAGE_ID, LAST_POSITION, POSITIONAL_IDS, Record, index


@dataclass(frozen=True)
class Kind:
    name: str
    create_model: type[BaseModel]
    patch_model: type[BaseModel]
    replace_model: type[BaseModel]
    wire_model: type[BaseModel]
    list_query: type[ListQuery]
    defaults: dict[str, Any]
    unsupported: frozenset[str] = frozenset()  # accepted only empty, never stored
    references: tuple[str, ...] = ()  # fields naming a parent: "agent_id" -> agent

    def parents(self, record: Record) -> list[tuple[str, str]]:
        """(kind, id) of each parent the record names; they must exist, and hold a link to it."""
        return [(name.removesuffix("_id"), record[name]) for name in self.references if record.get(name)]

    def terms(self, record: Record) -> list[str]:
        """The index terms the record has entries under (store/index.py)."""
        return index.terms_of(record, self.parents(record))


AGENTS = Kind(
    "agent",
    models.AgentCreate,
    models.AgentPatch,
    models.AgentReplace,
    models.Agent,
    ListQuery,
    defaults={"instructions": [], "model": models.DEFAULT_MODEL, "default_settings": {}, "metadata": {}},
    unsupported=frozenset({"docs"}),
)
USERS = Kind(
    "user",
    models.UserCreate,
    models.UserPatch,
    models.UserReplace,
    models.User,
    ListQuery,
    defaults={"metadata": {}},
    unsupported=frozenset({"docs"}),
)
SESSIONS = Kind(
    "session",
    models.SessionCreate,
    models.SessionPatch,
    models.SessionReplace,
    models.Session,
    SessionListQuery,
    defaults={"metadata": {}, "render_templates": False, LAST_POSITION: "", LAST_MESSAGE_ID: "", POSITIONAL_IDS: True},
    references=("agent_id", "user_id"),
)
KINDS = {kind.name: kind for kind in (AGENTS, USERS, SESSIONS)}
