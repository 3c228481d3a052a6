"""make run's HTTP front (infra/local_gateway.py) over real sockets: one write per answer, connections
read concurrently with a timeout, and every answer it makes itself in the one error shape."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from conftest import KEYS

AUTH = f"Authorization: Bearer {KEYS['alice']}\r\n"


@pytest.fixture
def gateway(table):
    import app as app_module
    from infra.local_gateway import serve_in_thread

    server = serve_in_thread(app_module.app, read_timeout=3.0)
    yield server
    server.shutdown()
    server.server_close()


def connect(server) -> socket.socket:
    return socket.create_connection(server.server_address[:2], timeout=10)


def read_answer(sock: socket.socket, head_only: bool = False) -> tuple[int, dict[str, str], bytes, int]:
    """(status, headers, body, how many recv calls it took), reading to Content-Length (not past
    the headers for an answer to HEAD)."""
    data, reads = b"", 0
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        reads += 1
        if not chunk:
            raise AssertionError(f"connection closed mid-answer: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])}
    while not head_only and len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        reads += 1
        if not chunk:
            raise AssertionError(f"connection closed mid-body: {body!r}")
        body += chunk
    return int(lines[0].split()[1]), headers, body, reads


def ask(sock: socket.socket, request: str | bytes) -> tuple[int, dict[str, str], bytes, int]:
    data = request.encode() if isinstance(request, str) else request
    sock.sendall(data)
    return read_answer(sock, head_only=data.startswith(b"HEAD "))


def assert_error(status: int, headers: dict[str, str], body: bytes, want_status: int, code: str) -> dict:
    assert status == want_status, (status, body)
    assert headers["content-type"] == "application/json"
    assert headers.get("x-request-id")
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"] and error["details"] == [], error
    return error


def test_each_answer_on_a_kept_alive_connection_arrives_whole_in_one_write(gateway):
    """Headers and body written separately leave the body to Nagle's algorithm, which holds it
    for the client's delayed ACK (about 40 ms); written at once, one recv reads the answer."""
    with connect(gateway) as sock:
        for _ in range(20):
            status, headers, body, reads = ask(sock, f"GET /agents HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n")
            assert status == 200 and json.loads(body) == {"items": [], "next_cursor": None}
            assert reads == 1, "the answer came in pieces"
            assert headers.get("connection") != "close"


def test_thirty_clients_at_once_are_all_answered(gateway):
    results: list[int] = []
    barrier = threading.Barrier(30)

    def client() -> None:
        barrier.wait()
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {KEYS['alice']}"}) as http:
            results.extend(http.get("/agents").status_code for _ in range(3))

    threads = [threading.Thread(target=client) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 90


def test_a_stalled_body_holds_up_only_its_own_client_and_gets_a_408(gateway):
    with connect(gateway) as stalled:
        stalled.sendall(
            f"POST /agents HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"'.encode()
        )
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {KEYS['alice']}"}) as http:
            for _ in range(5):
                assert http.post("/agents", json={"name": "other"}).status_code == 201
        stalled.setblocking(False)
        with pytest.raises(BlockingIOError):
            stalled.recv(1)  # still waiting for its body: the others went past it, not after it
        stalled.settimeout(30)
        status, headers, body, _ = read_answer(stalled)
        assert_error(status, headers, body, 408, "request_timeout")
        assert headers["connection"] == "close"
    names = httpx.get(f"{gateway.url}/agents", headers={"Authorization": f"Bearer {KEYS['alice']}"}).json()
    assert [agent["name"] for agent in names["items"]] == ["other"] * 5  # nothing from the stalled one


@pytest.mark.parametrize(
    "request_text, status, code",
    [
        ("TRACE /agents HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented"),
        ("BREW /agents HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented"),
        ("GET /" + "a" * 70_000 + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request_uri_too_long"),
        (
            "GET /agents HTTP/1.1\r\nHost: x\r\nX-Big: " + "b" * 70_000 + "\r\n\r\n",
            431,
            "request_header_fields_too_large",
        ),
        (
            "GET /agents HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{n}: v\r\n" for n in range(120)) + "\r\n",
            431,
            "request_header_fields_too_large",
        ),
        ("GET /agents HTTP/9.9\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
        ("garbage\r\n\r\n", 400, "bad_request"),
        (f"POST /agents HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 11000000\r\n\r\n", 413, "payload_too_large"),
        (f"POST /agents HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: -1\r\n\r\n", 400, "bad_request"),
        (f"POST /agents HTTP/1.1\r\nHost: x\r\n{AUTH}Transfer-Encoding: gzip\r\n\r\n", 400, "bad_request"),
        (f"GET /no/such/route HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n", 404, "not_found"),  # the app's catch-all
        ("GET /no/such/route HTTP/1.1\r\nHost: x\r\n\r\n", 401, "unauthorized"),  # ... behind the key
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"),
    ],
)
def test_what_the_gateway_refuses_itself_is_json_in_the_one_shape(gateway, table, request_text, status, code):
    from conftest import scan_all

    before = scan_all(table)
    with connect(gateway) as sock:
        assert_error(*ask(sock, request_text)[:3], status, code)
    assert scan_all(table) == before


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT"])
def test_a_method_a_known_path_lacks_is_the_apps_405_with_allow(gateway, method):
    with connect(gateway) as sock:
        status, headers, body, _ = ask(sock, f"{method} /agents HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n")
        assert status == 405 and headers["allow"] == "POST, GET"
        if method == "HEAD":
            assert body == b"" and int(headers["content-length"]) > 0  # the length a body would have had
        else:
            assert json.loads(body)["error"]["code"] == "method_not_allowed"
        # The connection stays usable after a bodiless answer.
        status, _, body, _ = ask(sock, f"GET /agents HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n")
        assert status == 200 and json.loads(body)["items"] == []


def test_a_chunked_body_is_read(gateway):
    payload = json.dumps({"name": "chunked"}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (payload[:5], payload[5:])) + b"0\r\n\r\n"
    with connect(gateway) as sock:
        status, _, body, _ = ask(
            sock,
            f"POST /agents HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
            + chunks,
        )
        assert status == 201, body
        agent_id = json.loads(body)["id"]
        status, _, body, _ = ask(sock, f"GET /agents/{agent_id} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n")
        assert status == 200 and json.loads(body)["name"] == "chunked"
