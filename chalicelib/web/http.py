"""Chalice glue: authentication middleware, one route per operation (web/operations.py), the
request read into a Call, and results and errors turned into JSON answers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from chalice import Chalice, Response

from chalicelib.rules import auth
from chalicelib.shared import jsonio, telemetry
from chalicelib.shared.errors import (
    InternalError,
    MethodNotAllowed,
    NotFound,
    ServiceError,
    Unauthorized,
    code_for,
    error_body,
)
from chalicelib.store import get_store
from chalicelib.web import headers as http_headers
from chalicelib.web.answers import answer_of, error_answer
from chalicelib.web.operations import Answer, Call, Operation, dispatch

logger = logging.getLogger("sessions")

CATCH_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
# Every method API Gateway can route. A known path answers each it does not take with our 405, so
# API Gateway routes them to the app instead of answering "Missing Authentication Token" itself;
# HEAD and OPTIONS included (no route takes them; there is no CORS): docs/api.md, "Methods".
GATEWAY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def json_response(answer: Answer) -> Response:
    return Response(
        body=jsonio.dumps(answer.body),
        status_code=answer.status,
        headers={"Content-Type": "application/json", **answer.headers},
    )


def error_response(error: ServiceError) -> Response:
    return json_response(error_answer(error))


class Web:
    """Binds the operations to a Chalice app: authentication first, then one route per
    (method, path), each building a Call from the request and answering JSON."""

    def __init__(self, app: Chalice) -> None:
        self.app = app
        self.public_paths: set[str] = set()
        self.operations: dict[tuple[str, str], str] = {}  # (method, path) -> operation, for logs
        app.register_middleware(self._middleware, "http")
        app.route("/{proxy+}", methods=CATCH_ALL_METHODS, name="unknown_route")(self._unknown_route)

    def route(self, operation: Operation) -> None:
        self.operations[(operation.method, operation.path)] = operation.name

        def view(**ids: str) -> Response:
            request = self.app.current_request
            headers = request.headers or {}
            # Every failure answered here: Chalice would turn a view's exception into its own 500.
            return json_response(
                answer_of(
                    lambda: dispatch(
                        get_store(),
                        operation,
                        Call(
                            developer=request.context["authorizer"]["developer_id"],
                            ids=ids,
                            query=http_headers.one_value_each(request.query_params),
                            body=(
                                jsonio.loads_body(request.raw_body, operation.body_optional)
                                if operation.takes_body
                                else None
                            ),
                            if_match=headers.get("if-match"),
                            idempotency_key=headers.get("idempotency-key"),
                        ),
                    )
                )
            )

        view.__name__ = operation.name.replace(".", "_")
        self.app.route(operation.path, methods=[operation.method], name=view.__name__)(view)

    def refuse_other_methods(self) -> None:
        """After the routes and documents: each known path answers the methods it lacks with 405
        and Allow."""
        taken: dict[str, list[str]] = {path: ["GET"] for path in self.public_paths}
        for method, path in self.operations:
            taken.setdefault(path, []).append(method)
        for number, (path, methods) in enumerate(sorted(taken.items())):
            others = [m for m in GATEWAY_METHODS if m not in methods]

            def not_allowed(_path: str = path, _allowed: list[str] = methods, **ids: str) -> Response:
                method = self.app.current_request.method
                return error_response(
                    MethodNotAllowed(f"{method} is not a method of {_path}; it takes {', '.join(_allowed)}", _allowed)
                )

            self.app.route(path, methods=others, name=f"method_not_allowed_{number}")(not_allowed)

    def public_document(self, path: str, make: Callable[[], Any]) -> None:
        """A GET that needs no key (the API's own description), made once per process."""
        made: list[Any] = []

        def view() -> Response:
            if not made:
                made.append(jsonio.dumps(make()))
            return Response(body=made[0], status_code=200, headers={"Content-Type": "application/json"})

        self.public_paths.add(path)
        self.app.route(path, methods=["GET"], name=path.strip("/").replace(".", "_"))(view)

    def _unknown_route(self, **uri_params: str) -> Response:
        # API Gateway names the greedy parameter "proxy+", which cannot be a Python argument name.
        request = self.app.current_request
        path = (request.uri_params or {}).get("proxy+") or uri_params.get("proxy+", "")
        return error_response(NotFound(f"no route for {request.method} /{path}"))

    def _middleware(self, event: Any, get_response: Callable[[Any], Response]) -> Response:
        # API Gateway's own id when there is one, so our logs and its logs agree.
        context = event.context or {}
        current = str(context.get("requestId") or uuid.uuid4())
        path = context.get("resourcePath") or event.path
        measure = telemetry.begin(current, "http", f"{event.method} {path}", self.operations.get((event.method, path)))
        response = self._answer(event, get_response, measure)
        response.headers["X-Request-Id"] = current
        telemetry.finish(measure, response.status_code, _error_code(response))
        return response

    def _answer(self, event: Any, get_response: Callable[[Any], Response], measure: telemetry.Measure) -> Response:
        if not (event.path in self.public_paths and event.method == "GET"):
            headers = event.headers or {}
            authenticated = answer_of(lambda: Answer(200, _developer(headers.get("authorization"))))
            if authenticated.status != 200:
                return json_response(authenticated)
            measure.developer_id = event.context.setdefault("authorizer", {})["developer_id"] = authenticated.body
        try:
            response = get_response(event)
        except ServiceError as error:
            return error_response(error)
        except Exception:
            logger.exception("unhandled error")
            return error_response(InternalError())
        return _our_shape(response)


def _developer(authorization: str | None) -> str:
    """Whose key the request carries; Unauthorized without one, or with one no one holds."""
    key = http_headers.bearer_key(authorization)
    if key is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    return auth.developer_of(get_store(), key)


def _error_code(response: Response) -> str | None:
    if response.status_code < 400 or not isinstance(response.body, str):
        return None
    try:
        return jsonio.loads(response.body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _our_shape(response: Response) -> Response:
    """Rewrite Chalice's own error answers (405, 415, its 500) into the one error shape."""
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
        if response.status_code >= 500:
            logger.error("chalice answered %s: %s", response.status_code, body)
            return error_response(InternalError())
        code = code_for(response.status_code)
        return json_response(
            Answer(
                response.status_code,
                error_body(code, str(body.get("Message", code))),
                {k: v for k, v in response.headers.items() if k.lower() != "content-type"},
            )
        )
    return response
