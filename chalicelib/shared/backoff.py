"""The one way this service waits before trying again: full jitter (a random wait up to an
exponentially growing cap), so writers that collided spread out instead of colliding again in
lockstep. Used for lost optimistic-concurrency races (rules/conflicts.py), transactions cancelled
by a conflict or throttling, and batch items DynamoDB left unprocessed (store/calls.py); botocore
has its own for the calls it retries itself."""

from __future__ import annotations

import random
import time


def pause(attempt: int, first: float, most: float) -> None:
    """Sleep a random time up to `first` × 2^`attempt` seconds, and never more than `most`."""
    time.sleep(random.uniform(0, min(most, first * 2**attempt)))
