"""API Gateway's own answers (the ones it gives without calling the Lambda) in the service's error
shape, `{"error": {"code", "message", "details": []}}` (chalicelib/shared/errors.py), with
Content-Type application/json and X-Request-Id, as every answer of the app has.

Gateway response templates are not VTL, only `$context` substitution: so each type gets a fixed
code and message, and the two defaults (any type not listed) carry API Gateway's own message,
`$context.error.messageString`, which it writes as a JSON string, quotes and escapes included.
"""

from __future__ import annotations

import json
from typing import Any

# Its importers (infra/stack.py, infra/local_gateway.py) have the repository's root on sys.path.
from chalicelib.shared.errors import STATUSES

# response type: (code, message). Codes are the app's, and their status is theirs in the one table
# (chalicelib/shared/errors.py STATUSES), but for a Lambda that failed: API Gateway says 502.
RESPONSES: dict[str, tuple[str, str]] = {
    # No such resource or method: the app's catch-all route answers unknown paths itself, and its
    # 405 routes a method a known path lacks (chalicelib/web/http.py), so API Gateway answers this only
    # for "/". It says 403 "Missing Authentication Token"; the app says 404 not_found for unknown
    # routes. make run's server (infra/local_gateway.py) answers with these same entries.
    "MISSING_AUTHENTICATION_TOKEN": ("not_found", "no route for this method and path"),
    "RESOURCE_NOT_FOUND": ("not_found", "no route for this method and path"),
    # The API has no authorizer or resource policy today (keys are checked by the app, 401
    # unauthorized); these keep the shape if one is ever added.
    "UNAUTHORIZED": ("unauthorized", "missing or unknown API key"),
    "ACCESS_DENIED": ("forbidden", "access denied"),
    "THROTTLED": ("too_many_requests", "request rate over this API's limit; retry after a moment"),
    "QUOTA_EXCEEDED": ("too_many_requests", "request quota exceeded"),
    "REQUEST_TOO_LARGE": ("payload_too_large", "request over API Gateway's 10 MB limit"),
    "BAD_REQUEST_BODY": ("bad_request", "the request body could not be read"),
    "BAD_REQUEST_PARAMETERS": ("bad_request", "the request parameters could not be read"),
    "UNSUPPORTED_MEDIA_TYPE": ("unsupported_media_type", "unsupported media type"),
    "INTEGRATION_TIMEOUT": ("gateway_timeout", "the service did not answer within 29 seconds"),
    "INTEGRATION_FAILURE": ("internal_error", "the service failed to answer; it has been logged"),
}
OWN_STATUS = {"INTEGRATION_FAILURE": 502}
# No statusCode: each type inside a default keeps its own (a 403 stays a 403).
DEFAULTS: dict[str, str] = {"DEFAULT_4XX": "client_error", "DEFAULT_5XX": "internal_error"}


def status_of(response_type: str) -> int:
    return OWN_STATUS.get(response_type) or STATUSES[RESPONSES[response_type][0]]


HEADERS = {
    "gatewayresponse.header.Content-Type": "'application/json'",
    "gatewayresponse.header.X-Request-Id": "context.requestId",
}


def _template(code: str, message: str | None) -> str:
    """The body template; message None means API Gateway's own (already a quoted JSON string)."""
    body = json.dumps({"error": {"code": code, "message": "@MESSAGE@", "details": []}}, separators=(",", ":"))
    return body.replace('"@MESSAGE@"', "$context.error.messageString" if message is None else json.dumps(message))


def gateway_responses() -> dict[str, Any]:
    """The `x-amazon-apigateway-gateway-responses` extension of the API's OpenAPI body."""
    answers: dict[str, Any] = {}
    for response_type, (code, message) in RESPONSES.items():
        answers[response_type] = {
            "statusCode": str(status_of(response_type)),
            "responseParameters": dict(HEADERS),
            "responseTemplates": {"application/json": _template(code, message)},
        }
    for response_type, code in DEFAULTS.items():
        answers[response_type] = {
            "responseParameters": dict(HEADERS),
            "responseTemplates": {"application/json": _template(code, None)},
        }
    return answers
