"""Direct invocation from other Lambdas: the same operations as HTTP, without API Gateway.

    {"operation": "sessions.get", "developer_id": "acme", "params": {"session_id": "..."}}
 -> {"status": 200, "body": {...}, "headers": {"ETag": "\"3\""}, "request_id": "..."}

Callers are trusted by IAM (lambda:InvokeFunction on this function) and name the developer they
act for, so there is no API key. `params` holds, by name, what HTTP carries elsewhere: the path ids
(`session_id`), the query parameters (`limit`, `metadata_filter`, ...), `body`, `if_match` and
`idempotency_key`. Everything else is HTTP's: query values become the strings HTTP would carry and
the body goes through the same reader, so the same validation, limits and errors apply, in the
same error shape. The event's JSON schema: docs/invoke-event.schema.json; docs/invoke.md.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.rules import auth
from chalicelib.shared import jsonio, telemetry
from chalicelib.shared.errors import BadRequest
from chalicelib.store import get_store
from chalicelib.web.answers import answer_of
from chalicelib.web.operations import OPERATIONS, Answer, Call, Operation, dispatch

FUNCTION_NAME = "invoke"
HEADER_PARAMS = {"if_match", "idempotency_key"}


def invoke(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda handler. app.py deploys it as `app.invoke`: chalice names the handler after the
    function, so it must be called `invoke`."""
    request_id = str(getattr(context, "aws_request_id", "") or "-")
    measure = telemetry.begin(request_id, "invoke")
    answer = answer_of(lambda: _run(event, measure))
    body = _plain_json(answer.body)
    telemetry.finish(measure, answer.status, body["error"]["code"] if answer.status >= 400 else None)
    return {"status": answer.status, "body": body, "headers": answer.headers, "request_id": request_id}


def _run(event: Any, measure: telemetry.Measure) -> Answer:
    if not isinstance(event, dict):
        raise BadRequest("the event must be a JSON object: {operation, developer_id, params}")
    unknown = sorted(set(event) - {"operation", "developer_id", "params"})
    if unknown:
        raise BadRequest(f"unknown event member(s): {', '.join(unknown)}")
    name = event.get("operation")
    if not isinstance(name, str) or name not in OPERATIONS:
        raise BadRequest(f"operation must be one of: {', '.join(sorted(OPERATIONS))}")
    measure.operation = name
    developer = event.get("developer_id")
    if not isinstance(developer, str) or not auth.DEVELOPER_ID.match(developer):
        raise BadRequest("developer_id must be 1 to 64 letters, digits, '_', '.' or '-'")
    measure.developer_id = developer
    params = event.get("params", {})
    if not isinstance(params, dict):
        raise BadRequest("params must be a JSON object")
    operation = OPERATIONS[name]
    return dispatch(get_store(), operation, _call(operation, developer, dict(params)))


def _call(operation: Operation, developer: str, params: dict[str, Any]) -> Call:
    ids = {}
    for id_name in operation.path_ids:
        value = params.pop(id_name, None)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"params.{id_name} is required: a string")
        ids[id_name] = value
    headers = {}
    for header in HEADER_PARAMS:
        value = params.pop(header, None)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"params.{header} must be a string")
        headers[header] = value
    body = None
    if operation.takes_body:
        # Through HTTP's body reader: the same size limit, the same errors, the same exact numbers.
        text = json.dumps(params.pop("body")).encode("utf-8") if "body" in params else None
        body = jsonio.loads_body(text, operation.body_optional)
    elif "body" in params:
        raise BadRequest(f"{operation.name} takes no body")
    query = {key: _query_text(key, value) for key, value in params.items() if value is not None}
    return Call(
        developer=developer,
        ids=ids,
        query=query,
        body=body,
        if_match=headers["if_match"],
        idempotency_key=headers["idempotency_key"],
    )


def _query_text(key: str, value: Any) -> str:
    """A parameter as HTTP's query string would carry it: strings as they are, numbers and
    booleans in JSON, objects (metadata_filter) as their JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, dict, list)):
        return json.dumps(value, separators=(",", ":"))
    raise BadRequest(f"params.{key} must be a string, number, boolean or object")


def _plain_json(body: Any) -> Any:
    """The answer as plain JSON values for the Lambda runtime, which cannot write Decimal: integers
    written as integers stay exact at any size; other numbers become the nearest float
    (docs/invoke.md)."""
    return json.loads(jsonio.dumps(body), parse_float=float, parse_int=int)
