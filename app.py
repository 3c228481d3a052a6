"""The sessions service's HTTP API and its direct invocation: every route comes from the one
operations table (chalicelib/web/operations.py), which names what each runs."""

from chalice import Chalice

from chalicelib.web import invoke as invocation
from chalicelib.web import stream
from chalicelib.web.http import Web
from chalicelib.web.operations import OPENAPI_PATH, OPERATIONS

app = Chalice(app_name="sessions")
web = Web(app)

for operation in OPERATIONS.values():
    web.route(operation)

# The same operations for other Lambdas, by name and without API Gateway (chalicelib/web/invoke.py).
# Deployed with the handler "app.invoke", so it must be this module's `invoke`.
invoke = app.lambda_function(name=invocation.FUNCTION_NAME)(invocation.invoke)
# The table's stream, filtered to purge markers and TTL's removals (infra/stack.py subscribes it).
cascades = app.lambda_function(name=stream.FUNCTION_NAME)(stream.cascades)


def _openapi() -> dict:
    from chalicelib.web import openapi  # pydantic's schema generation only when asked for

    return openapi.document()


web.public_document(OPENAPI_PATH, _openapi)
web.refuse_other_methods()
