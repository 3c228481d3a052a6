"""Running an operation to an answer, whatever happens: its result, its ServiceError, DynamoDB's
"not now" as a 503, or our own bug as a 500 without internals. HTTP (api.py) and direct Lambda
invocation (invoke.py) both answer through here, so a failure looks the same on either path."""
from __future__ import annotations

import logging
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from .errors import InternalError, ServiceError, Unavailable, WriteOutcomeUnknown
from .operations import Answer
from .store import StoreError, begin_request, write_outcome_unknown

logger = logging.getLogger("sessions")

# DynamoDB's answers that mean "not now" rather than "wrong": after botocore's retries (and ours
# for transactions) they become a 503 with Retry-After. Anything else from DynamoDB is a bug.
_TRANSIENT = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                        "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable",
                        "TransactionConflictException", "TransactionInProgressException",
                        "TransactionCanceledException"})


def answer_of(run: Callable[[], Answer]) -> Answer:
    begin_request()
    try:
        return run()
    except ServiceError as error:
        return error_answer(error)
    except (ClientError, BotoCoreError, StoreError) as error:
        return error_answer(database_error(error))
    except Exception:
        logger.exception("unhandled error")
        return error_answer(InternalError())


def error_answer(error: ServiceError) -> Answer:
    return Answer(error.status, error.body(), dict(error.headers))


def database_error(error: Exception) -> ServiceError:
    """503 + Retry-After for DynamoDB saying "not now" (after every retry), which says so when a
    write of the request may have been applied all the same; 500 for our own bugs."""
    transient = _is_transient(error)
    (logger.warning if transient else logger.exception)("DynamoDB failed: %s", type(error).__name__)
    if not transient:
        return InternalError()
    if write_outcome_unknown():
        return WriteOutcomeUnknown()
    return Unavailable("the database is busy; retry in a moment")


def _is_transient(error: Exception) -> bool:
    if isinstance(error, ClientError):
        # DynamoDB's 5xx, named or not (a 5xx whose body has no error code is still its own fault)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error.response.get("Error", {}).get("Code") in _TRANSIENT or status >= 500
    # Timeouts, dropped connections, batch items left unprocessed after retries; not our own
    # malformed calls.
    return not isinstance(error, ParamValidationError)
