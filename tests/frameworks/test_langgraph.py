"""LangGraph's checkpointer over the service (sessions_client.integrations.langgraph), held to
LangGraph's own conformance suite (langgraph-checkpoint-conformance, installed at its pinned
version and run unmodified: every capability, base and extended), and a graph run on it."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, TypedDict

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

import sessions_client as sc  # noqa: E402
from conftest import KEYS  # noqa: E402
from sessions_client.integrations.langgraph import ServiceSaver  # noqa: E402


def test_the_langgraph_conformance_suite_passes_in_full(served_url):
    @checkpointer_test(name="ServiceSaver")
    async def saver():
        client = sc.Client(KEYS["alice"], served_url)
        yield ServiceSaver(client)
        client.close()

    report = asyncio.run(validate(saver))
    failures = {name: result.failures for name, result in report.results.items() if not result.passed}
    assert failures == {}, failures
    assert {name for name, result in report.results.items() if result.passed} == {c.value for c in ALL_CAPABILITIES}
    assert report.passed_all()


class State(TypedDict):
    turns: Annotated[list[str], operator.add]


def test_a_graph_keeps_its_state_across_runs_and_its_history(served_url):
    def answer(state: State) -> dict:
        return {"turns": [f"answer {len(state['turns'])}"]}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    with sc.Client(KEYS["alice"], served_url) as client:
        graph = builder.compile(checkpointer=ServiceSaver(client))
        config = {"configurable": {"thread_id": "user-42"}}
        graph.invoke({"turns": ["hi"]}, config)
        final = graph.invoke({"turns": ["again"]}, config)
        history = list(graph.get_state_history(config))
        # a second saver (another process) sees the same thread
        other = builder.compile(checkpointer=ServiceSaver(sc.Client(KEYS["alice"], served_url)))
        seen = other.get_state(config).values
    assert final["turns"] == ["hi", "answer 1", "again", "answer 3"]
    assert seen == final
    assert len(history) >= 4 and history[0].values == final


def test_a_state_past_one_item_is_refused_clearly_and_nothing_is_stored(served_url):
    def answer(state: State) -> dict:
        return {"turns": ["ok"]}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    with sc.Client(KEYS["alice"], served_url) as client:
        saver = ServiceSaver(client)
        graph = builder.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "too-big"}}
        with pytest.raises(sc.ValidationFailed) as refused:
            graph.invoke({"turns": ["z" * 400_000]}, config)
        assert refused.value.details[0]["type"] == "object_too_large"
        assert "one DynamoDB item" in refused.value.message
        assert list(saver.list(config)) == []  # the input step's checkpoint held it: refused, so none
