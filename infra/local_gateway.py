"""The HTTP front of `make run`: what API Gateway does for the deployed stack, on this machine.

chalice's own local server (which `make run` used before) keeps Python's defaults, and that
shows: a kept-alive connection stalls about 40 ms per answer (headers and body go out in
two writes without TCP_NODELAY, and Nagle's algorithm waits for the delayed ACK); the listen
backlog is 5; a client that stops in the middle of its body holds every other request up; and
the answers the server makes itself are HTML. This server:

- accepts with a real backlog and reads each connection on its own thread, with a read timeout,
  so a slow or stalled client holds up only itself; only the call into the app is one at a time,
  as in one Lambda container (Chalice keeps one `app.current_request` per app);
- writes each answer in one write, on a socket with TCP_NODELAY;
- answers what it refuses itself (a stalled or oversized body, an overlong request line or
  header, an unknown method, a method or path no route has) as JSON in the one error shape
  (chalicelib/shared/errors.py), with an X-Request-Id, as the gateway responses of the deployed API do
  (infra/gateway_responses.py): a path or method no route has is API Gateway's "missing
  authentication token", which the deployed API answers 404 `not_found` (only `/` is such a path:
  the app has a catch-all route, which takes any depth here as API Gateway's `{proxy+}` does, and
  answers the methods a known path lacks, HEAD and OPTIONS included, with 405). Headers only for HEAD.
"""

from __future__ import annotations

import threading
import traceback
import uuid
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from chalice import Chalice
from chalice.config import Config
from chalice.local import LambdaContext, LambdaEventConverter, MatchResult, RouteMatcher

from chalicelib.shared import jsonio
from chalicelib.shared.errors import STATUSES, code_for, error_body
from infra.gateway_responses import RESPONSES

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
READ_TIMEOUT = 30.0  # seconds a connection may take to send what it started
BACKLOG = 512
_NO_ROUTE = RESPONSES["MISSING_AUTHENTICATION_TOKEN"]
_TOO_LARGE = RESPONSES["REQUEST_TOO_LARGE"]
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _Refused(Exception):
    """A request the gateway answers itself, without the app."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _GreedyRouteMatcher(RouteMatcher):
    """chalice's matcher, but `{proxy+}` takes any depth of path, as API Gateway's does."""

    def match_route(self, url: str) -> MatchResult:
        try:
            return super().match_route(url)
        except ValueError:
            greedy = [route for route in self.route_urls if route.endswith("/{proxy+}") and route.count("/") == 1]
            parsed = urlparse(url)
            if not greedy or parsed.path in ("", "/"):
                raise
            return MatchResult(
                greedy[0], {"proxy+": parsed.path.strip("/")}, parse_qs(parsed.query, keep_blank_values=True)
            )


class GatewayServer(ThreadingHTTPServer):
    request_queue_size = BACKLOG
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], app: Chalice, read_timeout: float = READ_TIMEOUT, bind_and_activate: bool = True
    ) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.config = Config()
        self.events = LambdaEventConverter(_GreedyRouteMatcher(list(app.routes)), app.api.binary_types)
        self.app_lock = threading.Lock()
        super().__init__(address, GatewayHandler, bind_and_activate)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is its own business; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def call_app(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> dict[str, Any]:
        """The app's answer (a Lambda proxy response), or _Refused where API Gateway has no route."""
        try:
            event = self.events.create_lambda_event(method=method, path=path, headers=headers, body=body)
        except ValueError:
            raise _Refused(*_NO_ROUTE) from None
        # API Gateway matches no path parameter to an empty segment ("/" is not "/{proxy+}").
        if (
            "" in event["pathParameters"].values()
            or method not in self.app.routes[event["requestContext"]["resourcePath"]]
        ):
            raise _Refused(*_NO_ROUTE)
        context = LambdaContext(self.config.function_name, self.config.lambda_memory_size)
        with self.app_lock:
            return self.app(event, context)


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: GatewayServer

    def setup(self) -> None:
        self.timeout = self.server.read_timeout
        super().setup()

    def _handle(self) -> None:
        try:
            body = self._read_body()
            answer = self.server.call_app(self.command, self.path, dict(self.headers), body)
        except _Refused as refused:
            self._send_error(refused.code, refused.message)
            return
        except TimeoutError:
            self._send_error(
                "request_timeout", f"the request body did not arrive within {self.server.read_timeout:g} s", close=True
            )
            return
        except Exception:  # the app answers its own failures; this would be the glue's bug
            self.log_error("the app raised:\n%s", traceback.format_exc())
            self._send_error("internal_error", "internal error; it has been logged")
            return
        headers = dict(answer.get("headers") or {})
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        payload = answer.get("body") or b""
        if answer.get("isBase64Encoded"):
            import base64

            payload = base64.b64decode(payload)
        self._send(answer["statusCode"], headers, payload.encode() if isinstance(payload, str) else payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _read_body(self) -> bytes | None:
        encoding = self.headers.get("Transfer-Encoding")
        length = self.headers.get("Content-Length")
        if encoding is not None:
            if length is not None or encoding.strip().lower() != "chunked":
                self.close_connection = True
                raise _Refused("bad_request", "only Transfer-Encoding: chunked, and never with Content-Length")
            return self._read_chunked()
        if length is None:
            return None
        if not length.strip().isdigit():
            self.close_connection = True
            raise _Refused("bad_request", f"Content-Length must be a number of bytes; got {length!r}")
        size = int(length)
        if size > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise _Refused(*_TOO_LARGE)
        body = self.rfile.read(size)
        if len(body) < size:
            self.close_connection = True
            raise _Refused("bad_request", f"the connection closed after {len(body)} of {size} body bytes")
        return body or None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1026)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise _Refused("bad_request", "a malformed chunk size") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                raise _Refused(*_TOO_LARGE)
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                self.close_connection = True
                raise _Refused("bad_request", "a chunk ended early")
            chunks.append(chunk)
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):  # trailers, ignored
            pass
        return b"".join(chunks) or None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What http.server refuses before a handler runs (400, 414, 431, 501, 505), in our shape."""
        self._send_error(code_for(code), message or HTTPStatus(code).phrase, close=True)

    def _send_error(self, code: str, message: str, close: bool = False) -> None:
        body = jsonio.dumps(error_body(code, message)).encode()
        self._send(STATUSES[code], {"Content-Type": "application/json", "X-Request-Id": str(uuid.uuid4())}, body, close)

    def _send(self, status: int, headers: dict[str, str], body: bytes, close: bool = False) -> None:
        """The whole answer in one write (no Nagle stall between headers and body); none for HEAD."""
        if close or self.close_connection:
            self.close_connection = True
            headers["Connection"] = "close"
        phrase = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {phrase}", f"Date: {formatdate(usegmt=True)}", f"Content-Length: {len(body)}"]
        headers.setdefault("Content-Type", "application/json")
        lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the app logs one JSON line per request (chalicelib/shared/telemetry.py)

    def log_error(self, format: str, *args: Any) -> None:
        if "timed out" not in format:  # an idle kept-alive connection closing is not news
            super().log_error(format, *args)


def serve_in_thread(app: Chalice, port: int = 0, read_timeout: float = READ_TIMEOUT) -> GatewayServer:
    """A server on loopback, serving from a daemon thread (tests); stop it with .shutdown()."""
    server = GatewayServer(("127.0.0.1", port), app, read_timeout)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
