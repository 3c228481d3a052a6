"""Running an operation to an answer, whatever happens: its result, its ServiceError, the store
saying "not now" as a 503, or our own bug as a 500 without internals. HTTP (web/http.py) and
direct Lambda invocation (web/invoke.py) both answer through here, so a failure looks the same on
either path."""

from __future__ import annotations

import logging
from collections.abc import Callable

from chalicelib.shared.errors import (
    InternalError,
    PreconditionFailed,
    ServiceError,
    Unavailable,
    WriteOutcomeUnknown,
    error_body,
)
from chalicelib.store import StoreError, StoreFailed, StoreUnavailable, begin_request, write_outcome_unknown
from chalicelib.web import headers
from chalicelib.web.operations import Answer

logger = logging.getLogger("sessions")


def answer_of(run: Callable[[], Answer]) -> Answer:
    begin_request()
    try:
        return run()
    except ServiceError as error:
        return error_answer(error)
    except StoreError as error:
        return error_answer(database_error(error))
    except Exception:
        logger.exception("unhandled error")
        return error_answer(InternalError())


def error_answer(error: ServiceError) -> Answer:
    if isinstance(error, PreconditionFailed):
        message = (
            f"{error.message}: its ETag is now {headers.etag(error.current_version)}; "
            "read it again and retry with that If-Match"
        )
        return Answer(error.status, error_body(error.code, message, error.details), dict(error.headers))
    return Answer(error.status, error.body(), dict(error.headers))


def database_error(error: StoreError) -> ServiceError:
    """503 + Retry-After for the store saying "not now" (after every retry), which says so when a
    write of the request may have been applied all the same; 500 for our own bugs."""
    if isinstance(error, StoreFailed):
        logger.error("DynamoDB failed: %s", error, exc_info=error)
        return InternalError()
    logger.warning("DynamoDB failed: %s", type(error.__cause__ or error).__name__)
    if error.outcome_unknown if isinstance(error, StoreUnavailable) else write_outcome_unknown():
        return WriteOutcomeUnknown()
    return Unavailable("the database is busy; retry in a moment")
