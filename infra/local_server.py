"""`make run`: the service on this machine, with nothing but Python.

Starts moto's DynamoDB server in its own process on a free loopback port (unless
AWS_ENDPOINT_URL_DYNAMODB names an endpoint already), creates the table if absent, registers API
keys from SESSIONS_API_KEYS (`developer:key,developer:key`) or makes one and prints it, then
serves the app with chalice's local server on 127.0.0.1:$PORT. Ctrl-C or SIGTERM stops all of it.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalice.local import ChaliceRequestHandler, ForbiddenError, LocalDevServer  # noqa: E402

from chalicelib import auth, jsonio, schema  # noqa: E402
from chalicelib.errors import error_body  # noqa: E402


class GatewayHandler(ChaliceRequestHandler):
    """chalice local's handler, made to behave like the deployed stack in two ways:

    - one request at a time through the app, as in one Lambda container: Chalice keeps a single
      `app.current_request`, so two requests running at once in one process could read each
      other's (and each other's developer);
    - a path no route matches gets our 404, as a gateway response gives it when deployed, instead
      of chalice local's API Gateway-style 403 "Missing Authentication Token".
    """

    _one_at_a_time = threading.Lock()

    def _serialized_handle(self) -> None:
        with self._one_at_a_time:
            self._generic_handle()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _serialized_handle

    def _send_error_response(self, error):  # type: ignore[override]
        if isinstance(error, ForbiddenError):
            path = self.path.split("?", 1)[0]
            body = jsonio.dumps(error_body("not_found", f"no route for {self.command} {path}"))
            self._send_http_response(404, {"Content-Type": "application/json",
                                           "X-Request-Id": str(uuid.uuid4())}, body)
            return
        super()._send_error_response(error)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it if this process dies without cleaning up."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def wait_until_answering(endpoint: str, process: subprocess.Popen | None = None, seconds: float = 30) -> None:
    """Until something answers HTTP at endpoint (any status: DynamoDB answers GET / with an error)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"moto's server exited with {process.returncode}")
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered at {endpoint} within {seconds:.0f} s")


def start_dynamodb() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=_die_with_parent)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(endpoint, process)
    except SystemExit:
        process.terminate()
        raise
    return process, endpoint


def main() -> None:
    # Local credentials and region: moto accepts any; real endpoints get what the environment has.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = int(os.environ.get("PORT", "8000"))
    dynamodb = None
    # SIGTERM (to us or our process group) unwinds like Ctrl-C, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
            wait_until_answering(os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
        else:
            dynamodb, endpoint = start_dynamodb()
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
            print(f"DynamoDB (moto) on {endpoint}", flush=True)
        import boto3

        client = boto3.client("dynamodb")
        schema.create_table(client, schema.table_name())
        from chalicelib.store import get_store

        spec = os.environ.get("SESSIONS_API_KEYS", "")
        pairs = auth.parse_key_spec(spec) if spec else [("local", auth.new_key())]
        for developer, key in pairs:
            auth.register_key(get_store(), developer, key)
        if not spec:
            print(f"API key for developer 'local': {pairs[0][1]}", flush=True)

        from chalice.cli.factory import CLIFactory

        factory = CLIFactory(project_dir=str(ROOT))
        config = factory.create_config_obj(chalice_stage_name="dev")
        app = factory.load_chalice_app(config.environment_variables)
        server = LocalDevServer(app, config, "127.0.0.1", port, handler_cls=GatewayHandler)
        print(f"Serving the sessions API at http://127.0.0.1:{port} (table {schema.table_name()})", flush=True)
        server.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if dynamodb is not None:
            dynamodb.terminate()
            try:
                dynamodb.wait(timeout=5)
            except subprocess.TimeoutExpired:
                dynamodb.kill()


if __name__ == "__main__":
    main()
