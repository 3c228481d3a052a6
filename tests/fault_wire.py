"""The fault harness of tests/test_faults.py: DynamoDB faults injected at the HTTP layer of one
boto3 client, so that botocore's real retries (get_store()'s Config) run.

How faults get in. moto answers DynamoDB from a botocore `before-send` handler. botocore calls
EVERY `before-send` handler and only then takes the first answer, so a fault handler registered
in front of moto's does not stop moto from applying the write. `Wire` therefore takes moto's
handler off the one client under test and sends through moto itself. Per send it either

  - refuses the request (it never reaches the table): ProvisionedThroughputExceededException,
    ThrottlingException, InternalServerError (HTTP 500), TransactionCanceledException with a
    TransactionConflict reason (TransactWriteItems only), ConnectTimeoutError;
  - applies the request and loses the answer: ReadTimeoutError, or an InternalServerError after
    the write (DynamoDB's 500 leaves the outcome unknown);
  - or passes it through.

A TransactWriteItems that botocore retries carries the same ClientRequestToken, and DynamoDB
answers a token it already committed with success, applying nothing (its documented idempotency).
moto does not implement that, so Wire does; without it every lost answer would turn into a
condition failure on botocore's retry, which DynamoDB does not answer to the same token.

Sleeping is recorded, not done (`Sleeps`): botocore's backoff and the store's own jitter are
summed, so a test runs in seconds and can report the backoff.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

from chalicelib import store as store_module

DDB = "com.amazonaws.dynamodb.v20120810#"

# --- the wire ---------------------------------------------------------------------------------

REFUSALS = (
    "ProvisionedThroughputExceeded",
    "Throttling",
    "InternalServerError",
    "TransactionConflict",
    "ConnectTimeout",
)
LOST_ANSWERS = ("ReadTimeout", "InternalServerError(applied)")  # the request was applied first
KINDS = REFUSALS + LOST_ANSWERS
BOTOCORE_RETRIES = tuple(kind for kind in KINDS if kind != "TransactionConflict")  # the store retries that one


def _dynamodb_error(request: Any, status: int, error_type: str, message: str, **extra: Any) -> AWSResponse:
    body = json.dumps({"__type": error_type, "message": message, **extra})
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected-fault"}
    return AWSResponse(request.url, status, headers, MockRawResponse(body))


def _refusal(kind: str, request: Any, body: dict[str, Any], rng: random.Random) -> AWSResponse:
    if kind == "ProvisionedThroughputExceeded":
        return _dynamodb_error(
            request,
            400,
            DDB + "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded.",
        )
    if kind == "Throttling":
        return _dynamodb_error(
            request,
            400,
            "com.amazon.coral.availability#ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        )
    if kind in ("InternalServerError", "InternalServerError(applied)"):
        return _dynamodb_error(request, 500, "com.amazon.coral.service#InternalServerError", "Internal server error")
    if kind == "TransactionConflict":
        reasons = [{"Code": "None"} for _ in body["TransactItems"]]
        reasons[rng.randrange(len(reasons))] = {
            "Code": "TransactionConflict",
            "Message": "Transaction is ongoing for the item",
        }
        codes = ", ".join(reason["Code"] for reason in reasons)
        return _dynamodb_error(
            request,
            400,
            DDB + "TransactionCanceledException",
            f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            CancellationReasons=reasons,
        )
    raise AssertionError(kind)


class Wire:
    """The test client's sending: moto behind it, faults in front, counts of everything."""

    def __init__(self, client: Any, seed: int = 0) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.on = True
        self.rate = 0.0  # chance of one fault on a send
        self.burst_rate = 0.0  # chance that a send starts a burst
        self.burst_length = (4, 12)  # sends a burst lasts
        self._burst: tuple[str, int] | None = None  # (kind, sends left)
        self.scripted: dict[str, list[str | None]] = {}  # operation -> faults of its next sends
        self.persistent: dict[str, str] = {}  # operation -> fault on every send
        self.sent: Counter[str] = Counter()  # sends (attempts) per operation
        self.calls: Counter[str] = Counter()  # API calls per operation (before retries)
        self.injected: Counter[str] = Counter()  # faults per kind
        self.tokens: list[str] = []  # ClientRequestToken of each TransactWriteItems send
        self.committed: dict[str, tuple[int, Any, Any]] = {}  # token -> DynamoDB's answer, for replays
        self.replayed = 0
        events = client.meta.events
        events.unregister("before-send", botocore_stubber)
        events.register_first("before-send.dynamodb", self._send)
        events.register("before-call.dynamodb", self._call)

    def reset_counts(self) -> None:
        for counter in (self.sent, self.calls, self.injected):
            counter.clear()
        self.tokens.clear()
        self.replayed = 0

    @property
    def retries(self) -> int:
        """Sends botocore made again after a fault (each one a fault absorbed below the store)."""
        return sum(self.sent.values()) - sum(self.calls.values())

    def _call(self, event_name: str, **_: Any) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1

    def _fault(self, operation: str, token: str | None) -> str | None:
        if not self.on:
            return None
        if self.scripted.get(operation):
            return self.scripted[operation].pop(0)
        if operation in self.persistent:
            return self.persistent[operation]
        applicable = [k for k in KINDS if k != "TransactionConflict" or operation == "TransactWriteItems"]
        if self._burst is not None:
            kind, left = self._burst
            self._burst = (kind, left - 1) if left > 1 else None
            return kind
        draw = self.rng.random()
        if draw < self.burst_rate:
            # A spike (throttling, an unreachable endpoint, answers lost on the way back) hits
            # whatever is sent next: this is what exhausts botocore's retries.
            kind = self.rng.choice(
                ["ProvisionedThroughputExceeded", "Throttling", "InternalServerError", "ConnectTimeout", "ReadTimeout"]
            )
            left = self.rng.randint(*self.burst_length) - 1
            self._burst = (kind, left) if left else None
            return kind
        if draw < self.burst_rate + self.rate:
            if operation == "TransactWriteItems" and self.rng.random() < 0.5:
                return "TransactionConflict"  # what transactions meet most, in DynamoDB
            return self.rng.choice(applicable)
        return None

    def _send(self, request: Any, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        self.sent[operation] += 1
        body = json.loads(request.body or b"{}")
        token = body.get("ClientRequestToken")
        if operation == "TransactWriteItems":
            self.tokens.append(token)
        fault = self._fault(operation, token)
        if fault == "TransactionConflict" and token in self.committed:
            fault = None  # a committed token is answered from DynamoDB's idempotency record
        if fault is not None:
            self.injected[fault] += 1
        if fault == "ConnectTimeout":
            raise ConnectTimeoutError(endpoint_url=request.url)
        if fault in REFUSALS:
            return _refusal(fault, request, body, self.rng)
        if token is not None and token in self.committed:
            answer = self.committed[token]
            self.replayed += 1
        else:
            answer = botocore_stubber.process_request(request)
            assert answer is not None, f"moto did not answer {operation}: nothing may reach real AWS"
            if token is not None and answer[0] == 200:
                self.committed[token] = answer
        if fault == "ReadTimeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if fault == "InternalServerError(applied)":
            return _refusal(fault, request, body, self.rng)
        status, headers, payload = answer
        return AWSResponse(request.url, status, headers, MockRawResponse(payload))


class Sleeps:
    """A `time` module whose sleep only adds up (botocore's backoff, the store's jitter)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.each: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.total += seconds
        self.each.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@dataclass
class Faulty:
    wire: Wire
    backoff: Sleeps  # botocore's
    store_sleeps: Sleeps  # chalicelib's own retries

    def reset_counts(self) -> None:
        """Count from here on (what set-up requests did is not the test's)."""
        self.wire.reset_counts()
        for sleeps in (self.backoff, self.store_sleeps):
            sleeps.total, sleeps.each = 0.0, []


def production_store() -> store_module.Store:
    """The store exactly as a Lambda makes it (get_store()'s client and botocore Config), for the
    table of this test. Made with moto active, so no request can leave the process."""
    store_module.use_store(None)
    return store_module.get_store()
