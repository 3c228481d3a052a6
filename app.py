"""The sessions service's HTTP API: a table of routes onto named operations (chalicelib/web/operations.py)."""
from chalice import Chalice

from chalicelib.web import invoke as invocation
from chalicelib.web.http import Web

app = Chalice(app_name="sessions")
web = Web(app)

ROUTES = [
    # method   path                              operation
    ("POST",   "/agents",                        "agents.create"),
    ("GET",    "/agents",                        "agents.list"),
    ("GET",    "/agents/{agent_id}",             "agents.get"),
    ("PUT",    "/agents/{agent_id}",             "agents.replace"),
    ("PATCH",  "/agents/{agent_id}",             "agents.patch"),
    ("DELETE", "/agents/{agent_id}",             "agents.delete"),
    ("POST",   "/users",                         "users.create"),
    ("GET",    "/users",                         "users.list"),
    ("GET",    "/users/{user_id}",               "users.get"),
    ("PUT",    "/users/{user_id}",               "users.replace"),
    ("PATCH",  "/users/{user_id}",               "users.patch"),
    ("DELETE", "/users/{user_id}",               "users.delete"),
    ("POST",   "/sessions",                      "sessions.create"),
    ("GET",    "/sessions",                      "sessions.list"),
    ("GET",    "/sessions/{session_id}",         "sessions.get"),
    ("PUT",    "/sessions/{session_id}",         "sessions.replace"),
    ("PATCH",  "/sessions/{session_id}",         "sessions.patch"),
    ("DELETE", "/sessions/{session_id}",         "sessions.delete"),
    ("GET",    "/sessions/{session_id}/history", "sessions.history.get"),
    ("POST",   "/sessions/{session_id}/history", "sessions.history.append"),
    ("DELETE", "/sessions/{session_id}/history", "sessions.history.delete"),
    ("GET",    "/sessions/{session_id}/context", "sessions.context.get"),
    ("POST",   "/sessions/{session_id}/chat",    "sessions.chat"),
]

for method, path, operation in ROUTES:
    web.route(method, path, operation)

# The same operations for other Lambdas, by name and without API Gateway (chalicelib/web/invoke.py).
# Deployed with the handler "app.invoke", so it must be this module's `invoke`.
invoke = app.lambda_function(name=invocation.FUNCTION_NAME)(invocation.handler(ROUTES))


def _openapi() -> dict:
    from chalicelib.web import openapi   # pydantic's schema generation only when asked for
    return openapi.document(ROUTES)


web.public_document("/openapi.json", _openapi)
web.refuse_other_methods()
