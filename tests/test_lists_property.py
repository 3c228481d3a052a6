"""Lists against a model: random creates, PATCHes, PUTs, history appends (which move a session's
updated_at) and cascading deletes
of agents, users and sessions for two developers, driven through the service layer
(chalicelib.rules.service, chalicelib.rules.lists) and checked against a plain in-memory model.

- Every list check walks all pages by `cursor` (the drawn list rules walk them again by
  `offset`) and must give exactly the model's matching records in (sort field, id) order: no
  skip, no repeat, full pages but the last, `next_cursor` only while more remain, each item's
  fields and typed metadata as the model has them, none of the other developer's ids, and the
  cursor refused to the other developer.
- After every write, a list around the written (or deleted) record, in a rotating query shape
  (lists_around_the_last_write), so every run covers filters, parents, sorts and page sizes; the
  written record read back; after a refused write (404: another developer's or a deleted record,
  a session on a missing parent), the owner's record unchanged; and `consistency.check` finding
  no missing or orphaned index entry and no orphaned history, the table holding exactly the
  model's records.

Metadata keys and values come from a small domain, weighted so that filters hit often and typed
equality matters: `1` and `1.0` are equal; `1`, `"1"` and `true` are not, nor `{"o": 1}` and
`{"o": true}` (objects are never indexed, so only typed equality tells those apart); `null` is a
value on create and PUT but removes its key on PATCH. The model's equality (`_canon`) is written
independently of chalicelib.rules.filters, so breaking that module cannot break the oracle. Bulk creates
make terms longer than one probe round, and half the runs shrink the planner's read sizes
(TINY_SIZES) so that a few records take the paths of large sets.

Derandomized and bounded (SETTINGS). A failure prints the shortest program of steps Hypothesis
found; shrinking against moto can take a few minutes.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from chalicelib import store
from chalicelib.rules import deletes, history, kinds, lists, models, parameters
from chalicelib.rules import records as record_rules
from chalicelib.shared.errors import BadRequest, NotFound
from chalicelib.store import schema
from chalicelib.tools import consistency

DEVELOPERS = ("alice", "bob")
KINDS = {"agent": kinds.AGENTS, "user": kinds.USERS, "session": kinds.SESSIONS}


def listed(store, kind, developer: str, params: dict[str, str]) -> dict[str, Any]:
    """A list as the edge runs it: the query string read (rules/parameters.py), then the rules."""
    return lists.list_records(store, kind, developer, parameters.read(kind.list_query, params))


# Fields besides metadata and timestamps that the model tracks per kind.
FIELDS = {
    "agent": ("name", "about"),
    "user": ("name", "about"),
    "session": ("agent_id", "user_id", "situation", "render_templates"),
}

KEYS = ["a", "b", "#k = :v OR", "x.y"]
# As chalicelib.shared.jsonio.loads would parse them: non-integers are Decimal.
# {"o": true} beside {"o": 1}: objects are never indexed, so only typed equality tells them apart.
VALUES = [1, Decimal("1.0"), "1", True, False, None, "s", ["l"], {"o": 1}, {"o": True}]
# Typed look-alikes, by the kind of stored value: what a filter built from it may say instead.
VARIANTS: dict[str, list[Any]] = {
    "n": [1, Decimal("1.0"), "1", True],
    "b": [True, False, 1, "1"],
    "s": ["1", "s", 1],
    "null": [None, False],
    "l": [["l"], "l", [True]],
    "o": [{"o": 1}, {"o": Decimal("1.0")}, {"o": "1"}, {"o": True}],
}

OMIT = object()  # a field left out of the body (as opposed to sent as null)
# The query shapes of the checks after writes: (filter, parents of a session, sort_by, order,
# limit), every combination, in a fixed shuffled order so that consecutive checks differ in all.
SHAPES = list(
    itertools.product(
        ["none", "one key", "all keys", "look-alike", "another's key"],
        [(), ("agent",), ("user",), ("agent", "user")],
        ["created_at", "updated_at"],
        ["asc", "desc"],
        [1, 2, 3],
    )
)
random.Random(20261125).shuffle(SHAPES)
# chalicelib.rules.lists read sizes for "tiny" runs (see ListsMachine.seed).
TINY_SIZES = {"READ_CHUNK": 3, "GATHER_MAX": 4}

# Weighted towards 1 and 1.0 (one value, so filters on it match many records, across pages), their
# look-alikes "1" and true (which must never match them), and {"o": 1} beside {"o": true}.
metadata_values = st.one_of(
    st.sampled_from([1, Decimal("1.0")]),
    st.sampled_from([1, Decimal("1.0"), "1", True]),
    st.sampled_from([{"o": 1}, {"o": True}]),
    st.sampled_from(VALUES),
).map(copy.deepcopy)
metadata = st.dictionaries(st.sampled_from(KEYS), metadata_values, min_size=1, max_size=3)
# Left out, null (both "not given"), empty or not.
optional_metadata = st.one_of(metadata, st.just(OMIT), st.none(), st.just({}))
# In a PATCH a null value removes its key (on create and PUT it is stored): more nulls here.
patch_metadata = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), st.none() | metadata_values, min_size=1, max_size=3),
    st.just(OMIT),
    st.none(),
    st.just({}),
)


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Left out, sent as null ("not given" either way), or a value."""
    return st.one_of(st.just(OMIT), st.none(), strategy)


names = st.sampled_from(["Ada", "Bo"])
abouts = st.sampled_from(["x", "y"])
situations = st.sampled_from(["hi", "there"])
sort_fields = st.sampled_from(["created_at", "updated_at"])
orders = st.sampled_from(["asc", "desc"])
limits = st.integers(1, 3)
foreign = st.sampled_from([False, False, False, True])  # act as the other developer
# A record is named by its position among all ids of its kind ever made (both developers, deleted
# ones included), modulo their count: `agent=2` in a failing example is the third agent created.
picks = st.integers(0, 63)


def _body(**fields: Any) -> dict[str, Any]:
    return {name: copy.deepcopy(value) for name, value in fields.items() if value is not OMIT}


def _canon(value: Any) -> Any:
    """JSON's typed equality as a comparable value, independent of chalicelib.rules.filters."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float, Decimal)):
        return ("n", Decimal(str(value)))  # tuples compare Decimals by value: 1 == 1.0
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("null",)
    if isinstance(value, list):
        return ("l", tuple(_canon(item) for item in value))
    if isinstance(value, dict):
        return ("o", tuple(sorted(((k, _canon(v)) for k, v in value.items()), key=lambda kv: kv[0])))
    raise TypeError(f"not JSON: {value!r}")


def _json(value: Any) -> str:
    """What a client sends: non-integer Decimals go out as JSON numbers with a fraction."""
    return json.dumps(value, default=lambda v: float(v) if isinstance(v, Decimal) else str(v))


class ListsMachine(RuleBasedStateMachine):
    client: Any = None  # the session's moto DynamoDB client, set by the test

    def __init__(self) -> None:
        super().__init__()
        self.table = f"sessions-prop-{uuid.uuid4().hex[:12]}"
        schema.create_table(self.client, self.table, stream=False)
        self.store = store.Store(self.client, self.table)
        # developer -> kind -> id -> record (the model); every id ever made -> its developer
        self.model: dict[str, dict[str, dict[str, dict[str, Any]]]] = {d: {k: {} for k in KINDS} for d in DEVELOPERS}
        self.owner: dict[str, str] = {}
        self.ids: dict[str, list[str]] = {k: [] for k in KINDS}
        self.touched: set[str] = set(DEVELOPERS)  # whose index to check after this step
        self.written: tuple[str, str, dict[str, Any]] | None = None  # (kind, developer, record) last written
        self.rotation = 0  # which query shape the next check around a write takes
        self.shipped_sizes: dict[str, int] = {}  # lists' read sizes as shipped, while tiny ones are in use

    def teardown(self) -> None:
        for name, value in self.shipped_sizes.items():
            setattr(lists, name, value)
        self.client.delete_table(TableName=self.table)

    # --- helpers ----------------------------------------------------------------------------

    def _pick(self, kind: str, pick: int) -> str:
        return self.ids[kind][pick % len(self.ids[kind])]

    def _developer(self, record_id: str, other: bool) -> str:
        owner = self.owner[record_id]
        return next(d for d in DEVELOPERS if d != owner) if other else owner

    def _create(
        self,
        kind: str,
        developer: str,
        body: dict[str, Any],
        defaults: dict[str, Any],
        missing_parent: bool,
        read_back: bool = True,
    ) -> None:
        if missing_parent:
            with pytest.raises(NotFound):
                record_rules.create(self.store, KINDS[kind], developer, KINDS[kind].create_model.model_validate(body))
            return
        created = record_rules.create(self.store, KINDS[kind], developer, KINDS[kind].create_model.model_validate(body))
        record = {
            **defaults,
            **{k: copy.deepcopy(v) for k, v in body.items() if v is not None},
            "id": created.id,
            "created_at": created.created_at,
            "updated_at": created.created_at,
        }
        self.model[developer][kind][created.id] = record
        self.owner[created.id] = developer
        self.ids[kind].append(created.id)
        self.touched.add(developer)
        self.written = (kind, developer, record)
        if read_back:
            self._check_item(kind, record_rules.get(self.store, KINDS[kind], developer, created.id).answer, record)

    def _update(self, kind: str, pick: int, other: bool, body: dict[str, Any], replace: bool) -> None:
        record_id = self._pick(kind, pick)
        developer = self._developer(record_id, other)
        record = self.model[developer][kind].get(record_id)
        parsed = (KINDS[kind].replace_model if replace else KINDS[kind].patch_model).model_validate(body)
        if record is None:
            with pytest.raises(NotFound):
                record_rules.update(self.store, KINDS[kind], developer, record_id, parsed, replace=replace)
            self._unchanged(kind, record_id)
            return
        self.touched.add(developer)
        updated = record_rules.update(self.store, KINDS[kind], developer, record_id, parsed, replace=replace).answer
        before = _spelled({k: v for k, v in record.items() if k != "updated_at"})
        for name, value in body.items():
            if value is None:
                continue  # null means "not given"
            if name == "metadata" and not replace:
                for key, item in value.items():
                    if item is None:
                        record["metadata"].pop(key, None)
                    else:
                        record["metadata"][key] = copy.deepcopy(item)
            else:
                record[name] = copy.deepcopy(value)
        # An update that changes nothing (as written: 1 and 1.0 differ) writes nothing.
        if _spelled({k: v for k, v in record.items() if k != "updated_at"}) == before:
            assert updated.id == record_id and updated.updated_at == record["updated_at"]
        else:
            assert updated.id == record_id and updated.updated_at > record["updated_at"]
        record["updated_at"] = updated.updated_at
        self.written = (kind, developer, record)
        self._check_item(kind, record_rules.get(self.store, KINDS[kind], developer, record_id).answer, record)

    def _delete(self, kind: str, pick: int, other: bool) -> None:
        record_id = self._pick(kind, pick)
        developer = self._developer(record_id, other)
        records = self.model[developer]
        if record_id not in records[kind]:
            with pytest.raises(NotFound):
                deletes.delete(self.store, KINDS[kind], developer, record_id)
            self._unchanged(kind, record_id)
            return
        self.touched.add(developer)
        deletes.delete(self.store, KINDS[kind], developer, record_id)
        self.written = (kind, developer, records[kind][record_id])  # lists around it must lack it
        gone = [(kind, record_id)]
        del records[kind][record_id]
        if kind != "session":
            gone += [("session", sid) for sid, s in records["session"].items() if s.get(f"{kind}_id") == record_id]
        for gone_kind, gone_id in gone:
            records[gone_kind].pop(gone_id, None)
            with pytest.raises(NotFound):
                record_rules.get(self.store, KINDS[gone_kind], developer, gone_id).answer

    def _unchanged(self, kind: str, record_id: str) -> None:
        """After a refused write: the record, if its owner still has it, is as it was."""
        owner = self.owner[record_id]
        if record_id in self.model[owner][kind]:
            self._check_item(
                kind,
                record_rules.get(self.store, KINDS[kind], owner, record_id).answer,
                self.model[owner][kind][record_id],
            )

    def _filter_from(
        self, data: st.DataObject, kind: str, developer: str, parents: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Mostly keys of a stored record (one the parents select, if any does), each with its
        value or a typed variant of it (1 -> 1.0, "1", true ...), so filters both hit and nearly
        hit; otherwise none or random."""
        records = [r for r in self.model[developer][kind].values() if r["metadata"]]
        selected = [r for r in records if all(r.get(name) == pid for name, pid in (parents or {}).items())]
        records = selected or records
        how = data.draw(st.sampled_from(["stored", "stored", "random", "none"]), label="filter")
        if how == "none":
            return {}
        if how == "random" or not records:
            return data.draw(
                st.dictionaries(st.sampled_from(KEYS), metadata_values, min_size=1, max_size=2), label="metadata_filter"
            )
        stored = data.draw(st.sampled_from(records), label="filter from")["metadata"]
        wanted = {}
        for key in data.draw(
            st.lists(st.sampled_from(sorted(stored)), min_size=1, max_size=2, unique=True), label="filter keys"
        ):
            value = stored[key]
            exact = data.draw(st.sampled_from([True, True, True, False]), label=f"{key} as stored")
            wanted[key] = copy.deepcopy(
                value if exact else data.draw(st.sampled_from(VARIANTS[_canon(value)[0]]), label=f"{key} variant")
            )
        return wanted

    def _expected(
        self, kind: str, developer: str, wanted: dict[str, Any], parents: dict[str, str], sort_by: str, order: str
    ) -> list[dict[str, Any]]:
        def matches(record: dict[str, Any]) -> bool:
            md = record["metadata"]
            return all(record.get(name) == pid for name, pid in parents.items()) and all(
                key in md and _canon(md[key]) == _canon(value) for key, value in wanted.items()
            )

        found = [r for r in self.model[developer][kind].values() if matches(r)]
        return sorted(found, key=lambda r: (r[sort_by], r["id"]), reverse=order == "desc")

    def _check_item(self, kind: str, item: Any, record: dict[str, Any]) -> None:
        wire = item.model_dump()
        assert wire["id"] == record["id"]
        assert (wire["created_at"], wire["updated_at"]) == (record["created_at"], record["updated_at"])
        assert _canon(wire["metadata"]) == _canon(record["metadata"]), (wire["metadata"], record["metadata"])
        for name in FIELDS[kind]:
            assert wire[name] == record.get(name), (name, wire, record)

    def _check_page(
        self, kind: str, developer: str, wanted: dict[str, Any], parents: dict[str, str], sort_by: str, order: str
    ) -> None:
        """One page holding the whole answer: the model's matching records, in order."""
        expected = self._expected(kind, developer, wanted, parents, sort_by, order)
        params = {"metadata_filter": _json(wanted), "sort_by": sort_by, "order": order, **parents}
        answer = listed(self.store, KINDS[kind], developer, params)
        assert [item.id for item in answer["items"]] == [r["id"] for r in expected], (kind, params)
        for item, record in zip(answer["items"], expected):
            self._check_item(kind, item, record)
        assert answer["next_cursor"] is None

    def _check_list(
        self,
        kind: str,
        developer: str,
        wanted: dict[str, Any],
        parents: dict[str, str],
        sort_by: str,
        order: str,
        limit: int,
        offset_limit: int | None,
    ) -> None:
        """Every page by cursor, then (unless offset_limit is None) every page by offset. Page
        sizes grow with long answers so that a walk by cursor takes at most 4 pages, and by
        offset 3 (each offset page reads all the pages before it)."""
        expected = self._expected(kind, developer, wanted, parents, sort_by, order)
        limit = max(limit, -(-len(expected) // 4))
        offset_limit = offset_limit and max(offset_limit, -(-len(expected) // 3))
        want_ids = [r["id"] for r in expected]
        base = {"metadata_filter": _json(wanted), "sort_by": sort_by, "order": order, **parents}
        other = next(d for d in DEVELOPERS if d != developer)
        other_ids = {i for i, d in self.owner.items() if d == other}

        # By cursor: page n is exactly expected[n*limit:(n+1)*limit]; a cursor only while more remain.
        got: list[str] = []
        params = {**base, "limit": str(limit)}
        for page in range(len(expected) // limit + 1):
            answer = listed(self.store, KINDS[kind], developer, params)
            chunk = expected[page * limit : (page + 1) * limit]
            ids = [item.id for item in answer["items"]]
            assert not set(ids) & other_ids, f"{developer} sees {other}'s records"
            assert ids == [r["id"] for r in chunk], (
                f"cursor page {page} of {kind}s {base} limit {limit}: got {ids}, "
                f"expected {[r['id'] for r in chunk]} of {want_ids}"
            )
            for item, record in zip(answer["items"], chunk):
                self._check_item(kind, item, record)
            got += ids
            more = (page + 1) * limit < len(expected)
            assert (answer["next_cursor"] is not None) == more, f"next_cursor on page {page}: {answer['next_cursor']}"
            if not more:
                break
            if page == 0:  # a cursor continues one developer's one query only
                with pytest.raises(BadRequest):
                    listed(self.store, KINDS[kind], other, {**params, "cursor": answer["next_cursor"]})
            params = {**base, "limit": str(limit), "cursor": answer["next_cursor"]}
        assert got == want_ids

        # By offset (no cursor), with its own page size: the same sequence.
        if offset_limit is None:
            return
        got = []
        for offset in range(0, len(expected) + 1, offset_limit):
            answer = listed(
                self.store, KINDS[kind], developer, {**base, "limit": str(offset_limit), "offset": str(offset)}
            )
            ids = [item.id for item in answer["items"]]
            assert ids == want_ids[offset : offset + offset_limit], (
                f"offset {offset} of {kind}s {base} limit {offset_limit}: got {ids} of {want_ids}"
            )
            assert (answer["next_cursor"] is not None) == (offset + offset_limit < len(expected))
            got += ids
            if offset + offset_limit >= len(expected):
                break
        assert got == want_ids

    # --- creates ------------------------------------------------------------------------------

    @initialize(
        agents=st.lists(st.tuples(st.sampled_from(DEVELOPERS), metadata | st.just({})), min_size=3, max_size=6),
        users=st.lists(st.tuples(st.sampled_from(DEVELOPERS), metadata | st.just({})), min_size=2, max_size=5),
        sessions=st.lists(st.tuples(picks, st.none() | picks, metadata | st.just({})), min_size=4, max_size=12),
        sizes=st.sampled_from(["as shipped", "tiny"]),
        first_shape=st.integers(0, len(SHAPES) - 1),
    )
    def seed(self, agents, users, sessions, sizes, first_shape):
        """Every run starts with records to list, sessions on their own developer's parents.

        Half the runs shrink the planner's read sizes (TINY_SIZES), so that these few records
        take the paths large sets take: Query and BatchGetItem in several chunks, and
        sort_by=updated_at with a metadata filter whose every candidate set is "too large to
        gather" walking the update order instead. The answers must not change."""
        self.rotation = first_shape
        if sizes == "tiny":
            for name, value in TINY_SIZES.items():
                self.shipped_sizes[name] = getattr(lists, name)  # AttributeError: renamed? update TINY_SIZES
                setattr(lists, name, value)
        for developer, md in agents:
            self._create(
                "agent",
                developer,
                _body(name="Ada", metadata=md),
                {"about": None},
                missing_parent=False,
                read_back=False,
            )
        for developer, md in users:
            self._create(
                "user",
                developer,
                _body(metadata=md),
                {"name": None, "about": None},
                missing_parent=False,
                read_back=False,
            )
        for agent, user, md in sessions:
            agent_id = self._pick("agent", agent)
            developer = self.owner[agent_id]
            own_users = [u for u in self.ids["user"] if self.owner[u] == developer]
            user_id = own_users[user % len(own_users)] if user is not None and own_users else OMIT
            self._create(
                "session",
                developer,
                _body(agent_id=agent_id, user_id=user_id, metadata=md),
                {"user_id": None, "situation": None, "render_templates": False},
                missing_parent=False,
                read_back=False,
            )

    @rule(agent=picks, user=st.none() | picks, count=st.integers(9, 11), md=metadata)
    def create_sessions_in_bulk(self, agent, user, count, md):
        """Many sessions alike, on one agent (and user): terms of more than one probe round (8
        entries), so the planner's rounds continue and lists run to many pages."""
        agent_id = self._pick("agent", agent)
        developer = self.owner[agent_id]
        if agent_id not in self.model[developer]["agent"]:
            return
        own_users = [u for u in self.ids["user"] if u in self.model[developer]["user"]]
        user_id = own_users[user % len(own_users)] if user is not None and own_users else OMIT
        for _ in range(count):
            self._create(
                "session",
                developer,
                _body(agent_id=agent_id, user_id=user_id, metadata=md),
                {"user_id": None, "situation": None, "render_templates": False},
                missing_parent=False,
                read_back=False,
            )

    @rule(developer=st.sampled_from(DEVELOPERS), name=names, about=optional(abouts), md=optional_metadata)
    def create_agent(self, developer, name, about, md):
        body = _body(name=name, about=about, metadata=md)
        self._create("agent", developer, body, {"about": None, "metadata": {}}, missing_parent=False)

    @rule(developer=st.sampled_from(DEVELOPERS), name=optional(names), about=optional(abouts), md=optional_metadata)
    def create_user(self, developer, name, about, md):
        body = _body(name=name, about=about, metadata=md)
        self._create("user", developer, body, {"name": None, "about": None, "metadata": {}}, missing_parent=False)

    @rule(
        agent=picks,
        user=st.none() | picks,
        other=foreign,
        situation=optional(situations),
        render=optional(st.booleans()),
        md=optional_metadata,
    )
    def create_session(self, agent, user, other, situation, render, md):
        """On an agent (and maybe a user) that may be deleted or the other developer's: then a
        404 and nothing written."""
        agent_id = self._pick("agent", agent)
        user_id = self._pick("user", user) if user is not None and self.ids["user"] else None
        developer = self._developer(agent_id, other)
        body = _body(
            agent_id=agent_id,
            user_id=user_id if user_id is not None else OMIT,
            situation=situation,
            render_templates=render,
            metadata=md,
        )
        missing = agent_id not in self.model[developer]["agent"] or (
            user_id is not None and user_id not in self.model[developer]["user"]
        )
        self._create(
            "session",
            developer,
            body,
            {"user_id": None, "situation": None, "render_templates": False, "metadata": {}},
            missing_parent=missing,
        )

    # --- updates --------------------------------------------------------------------------------

    @rule(agent=picks, other=foreign, name=optional(names), about=optional(abouts), md=patch_metadata)
    def patch_agent(self, agent, other, name, about, md):
        self._update("agent", agent, other, _body(name=name, about=about, metadata=md), replace=False)

    @rule(user=picks, other=foreign, name=optional(names), about=optional(abouts), md=patch_metadata)
    def patch_user(self, user, other, name, about, md):
        self._update("user", user, other, _body(name=name, about=about, metadata=md), replace=False)

    @rule(
        session=picks, other=foreign, situation=optional(situations), render=optional(st.booleans()), md=patch_metadata
    )
    def patch_session(self, session, other, situation, render, md):
        self._update(
            "session", session, other, _body(situation=situation, render_templates=render, metadata=md), replace=False
        )

    @rule(agent=picks, other=foreign, name=names, about=abouts, md=optional_metadata)
    def put_agent(self, agent, other, name, about, md):
        self._update("agent", agent, other, _body(name=name, about=about, metadata=md), replace=True)

    @rule(user=picks, other=foreign, name=names, about=abouts, md=optional_metadata)
    def put_user(self, user, other, name, about, md):
        self._update("user", user, other, _body(name=name, about=about, metadata=md), replace=True)

    @rule(session=picks, other=foreign, situation=situations, render=optional(st.booleans()), md=optional_metadata)
    def put_session(self, session, other, situation, render, md):
        self._update(
            "session", session, other, _body(situation=situation, render_templates=render, metadata=md), replace=True
        )

    @rule(session=picks, other=foreign)
    def append_history(self, session, other):
        session_id = self._pick("session", session)
        developer = self._developer(session_id, other)
        body = {"messages": [{"role": "user", "content": "hi"}]}
        if session_id in self.model[developer]["session"]:
            history.append(self.store, developer, session_id, models.HistoryAppend.model_validate(body))
            # An append is activity: the session moves forward in the update order.
            record = self.model[developer]["session"][session_id]
            moved = record_rules.get(self.store, kinds.SESSIONS, developer, session_id).answer.updated_at
            assert moved > record["updated_at"]
            record["updated_at"] = moved
            self.touched.add(developer)
        else:
            with pytest.raises(NotFound):
                history.append(self.store, developer, session_id, models.HistoryAppend.model_validate(body))

    # --- deletes --------------------------------------------------------------------------------

    @rule(kind=st.sampled_from(["agent", "user"]), pick=picks, other=foreign)
    def delete_parent(self, kind, pick, other):
        """Deleting an agent or user deletes its sessions (and their history)."""
        self._delete(kind, pick, other)

    @rule(pick=picks, other=foreign)
    def delete_session(self, pick, other):
        self._delete("session", pick, other)

    # --- lists ----------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        kind=st.sampled_from(sorted(KINDS)),
        developer=st.sampled_from(DEVELOPERS),
        sort_by=sort_fields,
        order=orders,
        limit=limits,
        offset_limit=limits,
    )
    def list_records(self, data, kind, developer, sort_by, order, limit, offset_limit):
        wanted = self._filter_from(data, kind, developer)
        self._check_list(kind, developer, wanted, {}, sort_by, order, limit, offset_limit)

    @rule(
        data=st.data(),
        by=st.sampled_from(["agent", "user", "agent+user", "any agent", "any user"]),
        developer=st.sampled_from(DEVELOPERS),
        sort_by=sort_fields,
        order=orders,
        limit=limits,
        offset_limit=limits,
    )
    def list_sessions_of(self, data, by, developer, sort_by, order, limit, offset_limit):
        """`agent_id` and/or `user_id`: those of one of the developer's sessions, or ("any") of
        any agent or user ever made: the other developer's, deleted ones, ones without sessions."""
        sessions = list(self.model[developer]["session"].values())  # creation order, as draws need
        session = data.draw(st.sampled_from(sessions), label="parents of") if sessions and "any" not in by else {}
        parents = {}
        for kind in ("agent", "user"):
            if kind in by:
                parents[f"{kind}_id"] = session.get(f"{kind}_id") or self._pick(kind, data.draw(picks, label=kind))
        wanted = self._filter_from(data, "session", developer, parents)
        self._check_list("session", developer, wanted, parents, sort_by, order, limit, offset_limit)

    # --- after every step -----------------------------------------------------------------------

    @invariant()
    def lists_around_the_last_write(self):
        """After a write, a list the written (or deleted) record belongs to (or, for a deleted
        one, belonged to), in the next of SHAPES: its kind, filtered by none, one or all of its
        metadata keys, all with one swapped for a typed look-alike, or a key of another record of
        the kind (for a session, one under other parents); for a session maybe by its agent
        and/or user. Every run walks its own stretch of SHAPES, whatever rules it draws."""
        if self.written is None:
            return
        kind, developer, record = self.written
        self.written = None
        n, self.rotation = self.rotation, self.rotation + 1
        how, by, sort_by, order, limit = SHAPES[n % len(SHAPES)]
        parents = {f"{k}_id": record[f"{k}_id"] for k in by if kind == "session" and record.get(f"{k}_id")}
        md = record["metadata"]
        keys = list(md)
        wanted: dict[str, Any] = {}
        if how == "one key" and keys:
            wanted = {keys[n % len(keys)]: md[keys[n % len(keys)]]}
        elif how == "all keys":
            wanted = dict(md)
        elif how == "look-alike" and keys:
            key = keys[n % len(keys)]
            # Python's == where typed equality says no (1 == true, {"o": 1} == {"o": true}) first.
            variants = [
                v for v in VARIANTS[_canon(md[key])[0]] if v == md[key] and _canon(v) != _canon(md[key])
            ] or VARIANTS[_canon(md[key])[0]]
            wanted = {**md, key: variants[n % len(variants)]}
        elif how == "another's key":
            others = [
                r
                for r in self.model[developer][kind].values()
                if r["metadata"]
                and r["id"] != record["id"]
                and not all(r.get(name) == pid for name, pid in parents.items())
            ] or [r for r in self.model[developer][kind].values() if r["metadata"]]
            if others:
                other = others[n % len(others)]["metadata"]
                key = sorted(other)[n % len(other)]
                wanted = {key: other[key]}
        self._check_list(kind, developer, copy.deepcopy(wanted), parents, sort_by, order, limit, None)

    @invariant()
    def index_agrees_with_records(self):
        """For each developer written to in this step (a Scan each, so not after every step: a
        refused write that left something behind is caught after the next write)."""
        for developer in sorted(self.touched):
            report = consistency.check(self.store, developer)
            assert report["missing"] == [], report
            assert report["orphaned"] == [], report
            assert report["orphaned_messages"] == [], report
            assert report["records"] == sum(len(records) for records in self.model[developer].values()), report
        self.touched.clear()


def _spelled(value: Any) -> Any:
    """A value as it is written, for "did anything change": typed, numbers by their text."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, (int, Decimal)):
        return ("n", str(Decimal(value)))
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("l", [_spelled(item) for item in value])
    if isinstance(value, dict):
        return ("o", sorted((key, _spelled(item)) for key, item in value.items()))
    raise AssertionError(f"unexpected {value!r}")


SETTINGS = settings(
    max_examples=6,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.mark.real_engine
def test_lists_agree_with_a_model_through_random_changes(dynamodb):
    ListsMachine.client = dynamodb
    run_state_machine_as_test(ListsMachine, settings=SETTINGS)
