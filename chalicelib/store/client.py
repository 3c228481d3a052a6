"""The boto3 client: its settings, and DynamoDB's failures translated
into the store's named errors (store/errors.py), so that no botocore name is used above the store.

A write whose answer never came (a timeout, a dropped connection, DynamoDB's own 500) may have
been applied: the client's hooks mark each write sent and settled, and a failure while one is
unsettled says so (StoreUnavailable.outcome_unknown; docs/reliability.md)."""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import StoreError, StoreFailed, StoreUnavailable

logger = logging.getLogger("sessions")
F = TypeVar("F", bound=Callable[..., Any])

# DynamoDB's answers that mean "not now" rather than "wrong": after botocore's retries (and ours
# for transactions) they are StoreUnavailable. Any other error code is StoreFailed.
_TRANSIENT = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
        "TransactionCanceledException",
    }
)


# --- settings ---------------------------------------------------------------------------------------


def _region(region: str | None = None) -> str:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def client_config() -> Any:
    """botocore settings for DynamoDB, bounded so that one call at its worst (3 attempts of 1 s to
    connect and 2 s to read, plus up to 1 + 2 s of backoff: 12 s) ends well inside API Gateway's
    29 s, leaving room for a cascade's 15 s budget (docs/reliability.md "Faults")."""
    from botocore.config import Config

    return Config(
        connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 3}, region_name=_region()
    )


def operator_region(region: str | None = None) -> str:
    """The region an operator's tool works in: the one given, else AWS_REGION, the profile's,
    us-east-1."""
    import boto3

    return region or os.environ.get("AWS_REGION") or boto3.session.Session().region_name or "us-east-1"


def operator_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A DynamoDB client for long operator runs (the admin CLI): the request path's client gives up
    within API Gateway's 29 s; a Scan page or a throttled batch may take longer."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=10,
        read_timeout=120,
        region_name=operator_region(region),
        retries={"mode": "standard", "total_max_attempts": 10},
    )
    return boto3.client("dynamodb", endpoint_url=endpoint_url, config=config)


# --- writes whose outcome is unknown -----------------------------------------------------------------

_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
_unsettled: contextvars.ContextVar[bool] = contextvars.ContextVar("unsettled write", default=False)


def _write_sent(model: Any, **_: Any) -> None:
    if model.name in _WRITES:
        _unsettled.set(True)


def _write_answered(http_response: Any, model: Any, **_: Any) -> None:
    # DynamoDB answered. Below 500 the answer says what happened (done, or refused: a condition,
    # a conflict, throttling); a 500 may come after the write was applied. A timeout or a dropped
    # connection (botocore's after-call-error) leaves the write unsettled too.
    if model.name in _WRITES and http_response.status_code < 500:
        _unsettled.set(False)


def watch_writes(client: Any) -> None:
    client.meta.events.register("before-call.dynamodb", _write_sent, unique_id="sessions-write-sent")
    client.meta.events.register("after-call.dynamodb", _write_answered, unique_id="sessions-write-answered")


def begin_request() -> None:
    """A request starts with no write in flight (web/answers.py)."""
    _unsettled.set(False)


def write_outcome_unknown() -> bool:
    """Whether this request's last write was sent and never answered for sure: it may have been
    applied. botocore retried it already (a transaction with the same ClientRequestToken)."""
    return _unsettled.get()


# --- failures ----------------------------------------------------------------------------------------


def translate(error: Exception) -> StoreError:
    """DynamoDB's failure (a botocore exception) as the store's named error."""
    from botocore.exceptions import ClientError, ParamValidationError

    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code") or ""
        # DynamoDB's 5xx, named or not (a 5xx whose body has no error code is still its own fault)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _TRANSIENT or status >= 500:
            return unavailable(f"DynamoDB: {code or status}")
        message = error.response.get("Error", {}).get("Message", "")
        return StoreFailed(f"DynamoDB refused {error.operation_name}: {code}: {message}", code, error.operation_name)
    if isinstance(error, ParamValidationError):  # our own malformed call
        return StoreFailed(f"a malformed DynamoDB call: {error}")
    # Timeouts, dropped connections, no endpoint or credentials.
    return unavailable(f"DynamoDB did not answer: {error}")


def unavailable(message: str) -> StoreUnavailable:
    """StoreUnavailable, saying whether a write of this request may have been applied all the same."""
    return StoreUnavailable(message, outcome_unknown=write_outcome_unknown())


def translated(function: F) -> F:
    """`function` (a generator function too) raising the store's named errors for botocore's."""
    from botocore.exceptions import BotoCoreError, ClientError

    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def generator(*args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from function(*args, **kwargs))
            except (ClientError, BotoCoreError) as error:
                raise translate(error) from error

        return generator  # type: ignore[return-value]

    @functools.wraps(function)
    def plain(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ClientError, BotoCoreError) as error:
            raise translate(error) from error

    return plain  # type: ignore[return-value]


def translating(cls: type) -> type:
    """Every public method of `cls` translated (see `translated`)."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, translated(member))
    return cls
