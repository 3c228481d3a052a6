"""A LangGraph checkpointer kept by the sessions service.

    from langgraph.graph import StateGraph
    from sessions_client import Client
    from sessions_client.integrations.langgraph import ServiceSaver

    graph = builder.compile(checkpointer=ServiceSaver(Client(api_key, base_url)))
    graph.invoke(inputs, {"configurable": {"thread_id": "user-42"}})

What maps to what (docs/frameworks.md):
- a thread -> one service session, found by its metadata (`{"langgraph_thread_id": <id>}`) or
  made by its first checkpoint, under `agent_id` (by default one agent of this adapter's);
- a checkpoint -> one item of that session (PUT /sessions/{id}/checkpoints/{checkpoint id}):
  the checkpoint serialized whole by the saver's serde, its metadata as JSON, at most 350 KB
  together (a larger one is refused: ValidationFailed, nothing stored);
- a pending write -> one item beside its checkpoint, read back with it in LangGraph's order;
- delete_thread -> DELETE of the session (its checkpoints, writes and history go with it);
  copy_thread, prune and delete_for_runs read the thread's checkpoints and write or delete them.

The async methods run the sync ones on a worker thread (asyncio.to_thread), so an event loop is
never blocked; the sync client is safe to share between threads.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)

from ..client import Client
from ..errors import NotFound

KEY = "langgraph_thread_id"
AGENT_MARK = {"sessions_client": "langgraph"}


class ServiceSaver(BaseCheckpointSaver[str]):
    def __init__(self, client: Client, *, agent_id: str | None = None, serde: Any = None) -> None:
        super().__init__(serde=serde)
        self.client = client
        self._agent_id = agent_id
        self._sessions: dict[str, str] = {}  # thread id -> session id
        self._lock = threading.Lock()

    # --- threads as sessions ------------------------------------------------------------------

    def _session_of(self, thread_id: str, create: bool = False) -> str | None:
        with self._lock:
            known = self._sessions.get(thread_id)
        if known is not None:
            return known
        found = next(iter(self.client.sessions.iter(page_size=2, metadata_filter={KEY: thread_id}, order="asc")), None)
        if found is None and not create:
            return None
        session_id = found.id if found is not None else self._create_session(thread_id)
        with self._lock:
            self._sessions[thread_id] = session_id
        return session_id

    def _create_session(self, thread_id: str) -> str:
        agent_id = self._agent_id or self._adapter_agent()
        key = f"lg-{thread_id}"[:255]  # two first checkpoints at once make one session
        return self.client.sessions.create(agent_id=agent_id, metadata={KEY: str(thread_id)}, idempotency_key=key).id

    def _adapter_agent(self) -> str:
        found = next(iter(self.client.agents.iter(page_size=1, metadata_filter=AGENT_MARK, order="asc")), None)
        if found is not None:
            self._agent_id = found.id
        else:
            created = self.client.agents.create(
                name="langgraph threads", metadata=AGENT_MARK, idempotency_key="lg-agent"
            )
            self._agent_id = created.id
        return self._agent_id

    def _forget(self, thread_id: str) -> None:
        with self._lock:
            self._sessions.pop(thread_id, None)

    def _threads(self) -> Iterator[tuple[str, str]]:
        """(thread id, session id) of every thread this adapter's agent holds."""
        agent_id = self._agent_id or self._adapter_agent()
        for session in self.client.sessions.iter(agent_id=agent_id, order="asc"):
            if KEY in session.metadata:
                yield str(session.metadata[KEY]), session.id

    # --- reading ------------------------------------------------------------------------------

    def _tuple(self, thread_id: str, found: Any) -> CheckpointTuple:
        def config(checkpoint_id: str) -> RunnableConfig:
            return {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": found.checkpoint_ns,
                    "checkpoint_id": checkpoint_id,
                }
            }

        return CheckpointTuple(
            config=config(found.checkpoint_id),
            checkpoint=self.serde.loads_typed((found.checkpoint.type, found.checkpoint.bytes)),
            metadata=found.metadata,
            parent_config=config(found.parent_checkpoint_id) if found.parent_checkpoint_id else None,
            pending_writes=[
                (w.task_id, w.channel, self.serde.loads_typed((w.value.type, w.value.bytes)))
                for w in found.pending_writes
            ],
        )

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id, namespace = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        session_id = self._session_of(thread_id)
        if session_id is None:
            return None
        checkpoint_id = get_checkpoint_id(config)
        try:
            if checkpoint_id:
                found = self.client.sessions.checkpoints.get(session_id, checkpoint_id, checkpoint_ns=namespace)
            else:
                page = self.client.sessions.checkpoints.list(session_id, checkpoint_ns=namespace, limit=1)
                found = page.items[0] if page.items else None
        except NotFound:
            self._forget(thread_id)  # the checkpoint, or the whole thread, is gone
            return None
        return self._tuple(thread_id, found) if found is not None else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        if config is None:
            threads = list(self._threads())
            namespace = None
        else:
            thread_id = str(config["configurable"]["thread_id"])
            session_id = self._session_of(thread_id)
            threads = [(thread_id, session_id)] if session_id is not None else []
            namespace = config["configurable"].get("checkpoint_ns")
        before_id = get_checkpoint_id(before) if before else None
        given = 0
        for thread_id, session_id in threads:
            try:
                found = self.client.sessions.checkpoints.iter(
                    session_id, checkpoint_ns=namespace, before=before_id, metadata_filter=filter or None,
                    page_size=min(limit, 1000) if limit else 100,
                )  # fmt: skip
                for checkpoint in found:
                    if limit is not None and given >= limit:
                        return
                    given += 1
                    yield self._tuple(thread_id, checkpoint)
            except NotFound:
                self._forget(thread_id)

    # --- writing ------------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id, namespace = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        kind, data = self.serde.dumps_typed(checkpoint)
        # as JSON: what the service stores and filters on (a value JSON cannot hold becomes its text)
        meta = json.loads(json.dumps(get_serializable_checkpoint_metadata(config, metadata), default=str))
        for attempt in range(2):
            session_id = self._session_of(thread_id, create=True)
            try:
                self.client.sessions.checkpoints.put(
                    session_id, checkpoint["id"], type=kind, data=data, checkpoint_ns=namespace,
                    parent_checkpoint_id=configurable.get("checkpoint_id"), metadata=meta,
                )  # fmt: skip
                break
            except NotFound:  # the thread was deleted meanwhile: a new one
                self._forget(thread_id)
                if attempt:
                    raise
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": namespace, "checkpoint_id": checkpoint["id"]}}

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        session_id = self._session_of(thread_id, create=True)
        typed = []
        for n, (channel, value) in enumerate(writes):
            kind, data = self.serde.dumps_typed(value)
            typed.append((channel, WRITES_IDX_MAP.get(channel, n), kind, data))
        if typed:
            self.client.sessions.checkpoints.put_writes(
                session_id, configurable["checkpoint_id"], typed, task_id=task_id, task_path=task_path,
                checkpoint_ns=configurable.get("checkpoint_ns", ""),
            )  # fmt: skip

    def delete_thread(self, thread_id: str) -> None:
        session_id = self._session_of(str(thread_id))
        if session_id is None:
            return
        try:
            self.client.sessions.delete(session_id)
        except NotFound:
            pass
        self._forget(str(thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Every checkpoint and write, oldest first, into the target thread (made if new)."""
        source = self._session_of(str(source_thread_id))
        if source is None:
            return
        checkpoints = list(self.client.sessions.checkpoints.iter(source))
        if not checkpoints:
            return
        target = self._session_of(str(target_thread_id), create=True)
        for found in reversed(checkpoints):
            self.client.sessions.checkpoints.put(
                target, found.checkpoint_id, type=found.checkpoint.type, data=found.checkpoint.bytes,
                checkpoint_ns=found.checkpoint_ns, parent_checkpoint_id=found.parent_checkpoint_id,
                metadata=found.metadata,
            )  # fmt: skip
            by_task: dict[tuple[str, str], list[tuple[str, int, str, bytes]]] = {}
            for w in found.pending_writes:
                by_task.setdefault((w.task_id, w.task_path), []).append((w.channel, w.idx, w.value.type, w.value.bytes))
            for (task_id, task_path), writes in by_task.items():
                self.client.sessions.checkpoints.put_writes(
                    target, found.checkpoint_id, writes, task_id=task_id, task_path=task_path,
                    checkpoint_ns=found.checkpoint_ns,
                )  # fmt: skip

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """keep_latest: the newest checkpoint of each namespace stays (with its writes); delete: none."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: keep_latest or delete")
        for thread_id in thread_ids:
            session_id = self._session_of(str(thread_id))
            if session_id is None:
                continue
            kept: set[str] = set()
            for found in list(self.client.sessions.checkpoints.iter(session_id)):  # newest first
                if strategy == "keep_latest" and found.checkpoint_ns not in kept:
                    kept.add(found.checkpoint_ns)
                    continue
                self.client.sessions.checkpoints.delete(
                    session_id, found.checkpoint_id, checkpoint_ns=found.checkpoint_ns
                )

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """The checkpoints whose metadata names one of these runs, and their writes, in every thread."""
        wanted = {str(run_id) for run_id in run_ids}
        if not wanted:
            return
        for _, session_id in list(self._threads()):
            for run_id in wanted:
                for found in list(
                    self.client.sessions.checkpoints.iter(session_id, metadata_filter={"run_id": run_id})
                ):
                    self.client.sessions.checkpoints.delete(
                        session_id, found.checkpoint_id, checkpoint_ns=found.checkpoint_ns
                    )

    # --- async: the same on a worker thread -----------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = await asyncio.to_thread(lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)
