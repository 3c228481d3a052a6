"""One TransactWriteItems, built action by action, each action carrying what its failed condition
means: the caller says it where it writes the condition, and the store raises it when DynamoDB
names that action in its cancellation reasons (no arithmetic on action indexes afterwards)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import VersionConflict

# What a failed condition means: an error, or a function of the item DynamoDB saw (when the action
# asked for it with ReturnValuesOnConditionCheckFailure) that makes one, perhaps after a read.
Failure = Exception | Callable[[dict[str, Any] | None], Exception]


class Transaction:
    def __init__(self) -> None:
        self.actions: list[dict[str, Any]] = []
        self._failures: list[Failure | None] = []

    def add(self, action: dict[str, Any], if_failed: Failure | None = None) -> Transaction:
        """`if_failed`: what this action's condition failing means (VersionConflict when not said:
        the record was not as read)."""
        self.actions.append(action)
        self._failures.append(if_failed)
        return self

    def extend(self, actions: Iterable[dict[str, Any]], if_failed: Failure | None = None) -> Transaction:
        for action in actions:
            self.add(action, if_failed)
        return self

    def failure(self, index: int, seen: dict[str, Any] | None) -> Exception:
        """The error for the action at `index` whose condition failed, `seen` the item it saw."""
        meaning = self._failures[index]
        if meaning is None:
            return VersionConflict()
        if isinstance(meaning, Exception):
            return meaning
        return meaning(seen)

    def __len__(self) -> int:
        return len(self.actions)
