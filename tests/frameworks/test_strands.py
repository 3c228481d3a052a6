"""Strands Agents' session repository over the service (sessions_client.integrations.strands):
the repository's documented contract, as Strands' file and S3 repositories are tested for
(create, read, update of sessions, agents, messages and multi-agents; what exists twice or not at
all is a SessionException; messages listed in order with limit and offset), and an Agent whose
conversation survives a new process. Strands' own session manager tests run against it too:
tests/frameworks/test_framework_suites.py."""

from __future__ import annotations

import pytest

pytest.importorskip("strands")

from strands.session.repository_session_manager import RepositorySessionManager  # noqa: E402
from strands.types.exceptions import SessionException  # noqa: E402
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType  # noqa: E402

import sessions_client as sc  # noqa: E402
from conftest import KEYS  # noqa: E402
from sessions_client.integrations.strands import ServiceSessionRepository  # noqa: E402


@pytest.fixture
def repository(served_url):
    with sc.Client(KEYS["alice"], served_url) as client:
        yield ServiceSessionRepository(client)


def test_sessions_agents_and_messages_round_trip(repository):
    repository.create_session(Session(session_id="s-1", session_type=SessionType.AGENT))
    with pytest.raises(SessionException):
        repository.create_session(Session(session_id="s-1", session_type=SessionType.AGENT))
    assert repository.read_session("s-1").session_id == "s-1" and repository.read_session("nope") is None
    agent = SessionAgent(agent_id="agent one/é", state={"k": [1, 2]}, conversation_manager_state={"removed": 0})
    repository.create_agent("s-1", agent)
    with pytest.raises(SessionException):
        repository.create_agent("s-1", agent)
    agent.state = {"k": [3]}
    repository.update_agent("s-1", agent)
    assert repository.read_agent("s-1", "agent one/é").state == {"k": [3]}
    with pytest.raises(SessionException):
        repository.update_agent("s-1", SessionAgent(agent_id="ghost", state={}, conversation_manager_state={}))
    for n in range(12):
        message = {"role": "user" if n % 2 == 0 else "assistant", "content": [{"text": f"m{n}"}]}
        repository.create_message("s-1", "agent one/é", SessionMessage(message=message, message_id=n))
    listed = repository.list_messages("s-1", "agent one/é", limit=3, offset=4)
    assert [m.message_id for m in listed] == [4, 5, 6]
    assert len(repository.list_messages("s-1", "agent one/é")) == 12
    redacted = SessionMessage(message={"role": "user", "content": [{"text": "x"}]}, message_id=2)
    redacted.redact_message = {"role": "user", "content": [{"text": "[redacted]"}]}
    repository.update_message("s-1", "agent one/é", redacted)
    assert repository.read_message("s-1", "agent one/é", 2).redact_message["content"][0]["text"] == "[redacted]"
    assert repository.read_message("s-1", "agent one/é", 99) is None
    with pytest.raises(SessionException):
        repository.create_message("s-2", "a", SessionMessage(message={"role": "user", "content": []}, message_id=0))


def test_a_session_manager_restores_an_agent_in_a_new_process(served_url):
    """What Strands' own RepositorySessionManager does with it: an agent's messages appended, and
    restored by a second manager (another process) on the same session."""
    from strands import Agent

    with sc.Client(KEYS["alice"], served_url) as client:
        manager = RepositorySessionManager(session_id="conv-9", session_repository=ServiceSessionRepository(client))
        agent = Agent(agent_id="helper", session_manager=manager, callback_handler=None)
        for text in ("hello", "how are you"):
            message = {"role": "user", "content": [{"text": text}]}
            agent.messages.append(message)
            manager.append_message(message, agent)
        manager.sync_agent(agent)
    with sc.Client(KEYS["alice"], served_url) as client:
        again = RepositorySessionManager(session_id="conv-9", session_repository=ServiceSessionRepository(client))
        restored = Agent(agent_id="helper", session_manager=again, callback_handler=None)
    assert [m["content"][0]["text"] for m in restored.messages] == ["hello", "how are you"]


class ScriptedModel:
    """A fake Strands model: each call streams the next reply of its script as text."""

    def __new__(cls, *replies: str):
        from strands.models.model import Model

        class _Scripted(Model):
            def __init__(self) -> None:
                self.replies = list(replies)

            def update_config(self, **config):
                pass

            def get_config(self):
                return {}

            async def structured_output(self, output_model, prompt, system_prompt=None, **kwargs):
                raise NotImplementedError
                yield

            async def stream(self, messages, tool_specs=None, system_prompt=None, **kwargs):
                yield {"messageStart": {"role": "assistant"}}
                yield {"contentBlockStart": {"start": {}}}
                yield {"contentBlockDelta": {"delta": {"text": self.replies.pop(0)}}}
                yield {"contentBlockStop": {}}
                yield {"messageStop": {"stopReason": "end_turn"}}

        return _Scripted()


def test_an_agent_loop_with_a_fake_model_keeps_its_conversation_across_processes(served_url):
    from strands import Agent

    with sc.Client(KEYS["alice"], served_url) as client:
        manager = RepositorySessionManager(session_id="loop-1", session_repository=ServiceSessionRepository(client))
        agent = Agent(model=ScriptedModel("Hello Ann.", "You are Ann."), session_manager=manager, callback_handler=None)
        agent("My name is Ann")
        agent("Who am I?")
    with sc.Client(KEYS["alice"], served_url) as client:
        manager = RepositorySessionManager(session_id="loop-1", session_repository=ServiceSessionRepository(client))
        restored = Agent(model=ScriptedModel(), session_manager=manager, callback_handler=None)
    texts = [m["content"][0]["text"] for m in restored.messages]
    assert texts == ["My name is Ann", "Hello Ann.", "Who am I?", "You are Ann."]
