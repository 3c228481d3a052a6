"""Chalice glue: authentication middleware, body and query parsing, and turning results and
errors into JSON answers. The only module besides app.py that knows about HTTP."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalice import Chalice, Response

from . import auth, jsonio
from .errors import NotFound, ServiceError, error_body
from .operations import OPERATIONS, Call
from .store import get_store

logger = logging.getLogger("sessions")

# Chalice answers some requests itself ({"Code", "Message"} bodies); we give them our shape.
_CHALICE_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                  413: "payload_too_large", 415: "unsupported_media_type", 500: "internal_error"}
CATCH_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(body=jsonio.dumps(payload), status_code=status,
                    headers={"Content-Type": "application/json", **(headers or {})})


def error_response(error: ServiceError) -> Response:
    return json_response(error.status, error.body(), error.headers)


def _internal_error() -> Response:
    return json_response(500, error_body("internal_error", "internal error; it has been logged"))


class Web:
    """Binds the operations to a Chalice app: authentication first, then one route per
    (method, path), each building a Call from the request and answering JSON."""

    def __init__(self, app: Chalice) -> None:
        self.app = app
        app.register_middleware(self._middleware, "http")
        app.route("/{proxy+}", methods=CATCH_ALL_METHODS, name="unknown_route")(self._unknown_route)

    def route(self, method: str, path: str, operation_name: str) -> None:
        operation = OPERATIONS[operation_name]

        def view(**ids: str) -> Response:
            request = self.app.current_request
            try:
                call = Call(developer=request.context["authorizer"]["developer_id"], ids=ids,
                            query=dict(request.query_params or {}),
                            body=jsonio.loads_body(request.raw_body) if operation.takes_body else None)
                return json_response(operation.status, operation.run(get_store(), call))
            except ServiceError as error:
                return error_response(error)

        view.__name__ = operation_name.replace(".", "_")
        self.app.route(path, methods=[method], name=view.__name__)(view)

    def _unknown_route(self, **uri_params: str) -> Response:
        # API Gateway names the greedy parameter "proxy+", which cannot be a Python argument name.
        request = self.app.current_request
        path = (request.uri_params or {}).get("proxy+") or uri_params.get("proxy+", "")
        return error_response(NotFound(f"no route for {request.method} /{path}"))

    def _middleware(self, event: Any, get_response: Callable[[Any], Response]) -> Response:
        try:
            headers = event.headers or {}
            developer = auth.authenticate(headers.get("authorization"), get_store())
            event.context.setdefault("authorizer", {})["developer_id"] = developer
            response = get_response(event)
        except ServiceError as error:
            return error_response(error)
        except Exception:
            logger.exception("unhandled error")
            return _internal_error()
        return _our_shape(response)


def _our_shape(response: Response) -> Response:
    """Rewrite Chalice's own error answers (405, 415, its 500) into the one error shape."""
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
        if response.status_code >= 500:
            logger.error("chalice answered %s: %s", response.status_code, body)
            return _internal_error()
        code = _CHALICE_CODES.get(response.status_code, "error")
        return json_response(response.status_code, error_body(code, str(body.get("Message", code))),
                             {k: v for k, v in response.headers.items() if k.lower() != "content-type"})
    return response
