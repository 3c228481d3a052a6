"""The API's OpenAPI 3.1 description, generated from the operations table (web/operations.py) and
the wire models (rules/models.py), so that neither can drift from it. What this module adds is how
each kind of query is described, and what each error status means. Served at GET /openapi.json
(no key needed); imported only when that is first asked for. `python -m chalicelib.web.openapi`
writes the direct invocation event's schema (docs/invoke-event.schema.json).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib.rules import auth, models
from chalicelib.rules.idempotency import MAX_KEY_CHARS
from chalicelib.shared.errors import STATUSES
from chalicelib.web.operations import OPENAPI_PATH, OPERATIONS, Operation

SCHEMA_REF = "#/components/schemas/{model}"


# --- query parameters -------------------------------------------------------------------------------

_UUID = {"type": "string", "format": "uuid"}
# Path ids that are not UUIDs: a checkpoint's is its saver's (LangGraph's uuid6, or any).
PATH_IDS = {"checkpoint_id": {"type": "string", "pattern": models.CHECKPOINT_ID}}


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A query model's fields (rules/parameters.py) as OpenAPI parameters, in their order; a JSON
    object one (metadata_filter) is carried as JSON text."""
    properties = _fixed_bounds(model.model_json_schema(mode="validation")).get("properties", {})
    parameters = []
    for name, field in model.model_fields.items():
        schema = {key: value for key, value in properties[name].items() if key not in ("title", "description")}
        if schema.get("default", 0) is None:
            del schema["default"]
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": False}
        if schema.get("type") == "object":
            parameter["content"] = {"application/json": {"schema": {"type": "object"}}}
        else:
            parameter["schema"] = schema
        parameters.append({**parameter, "description": field.description})
    return parameters


EVERY_ROUTE_ERRORS = (401, 415, 503)


# --- errors, headers, security ------------------------------------------------------------------------

ERRORS = {
    400: (
        "BadRequest",
        "the request cannot be read: malformed JSON, a bad or unknown query parameter, "
        "a bad cursor, a malformed Idempotency-Key",
    ),
    401: ("Unauthorized", "no `Authorization: Bearer` key, or an unknown one"),
    404: ("NotFound", "an absent id, another developer's id, a path id that is not a UUID"),
    409: ("Conflict", "changes won every retry, or an append's `after` is no longer last (`history_moved`)"),
    412: ("PreconditionFailed", "If-Match names a version the resource has moved past; nothing changed"),
    413: ("PayloadTooLarge", "a body over 1 MiB"),
    415: ("UnsupportedMediaType", "a Content-Type other than JSON"),
    422: (
        "ValidationFailed",
        "the body breaks the schema (details name each field), an Idempotency-Key "
        "reused for another request, a template that fails, a context over budget",
    ),
    502: ("ProviderFailed", "the model provider failed; nothing was stored"),
    503: (
        "Unavailable",
        "DynamoDB is throttled (or a cascading delete is unfinished, or no model provider "
        "is configured); retry after Retry-After",
    ),
    504: ("ProviderTimeout", "the model provider did not answer in time; nothing was stored"),
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}
HEADERS = {
    "RequestId": {
        "description": "this request's id, as in the service's logs",
        "required": True,
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "the resource's version; send it back as If-Match",
        "required": True,
        "schema": {"type": "string"},
    },
    "RetryAfter": {"description": "seconds to wait before retrying", "schema": {"type": "string"}},
    "WWWAuthenticate": {
        "description": "the scheme to authenticate with (RFC 6750): "
        '`Bearer realm="sessions"`, with `error="invalid_token"` when a key was sent',
        "schema": {"type": "string"},
    },
    "IdempotentReplayed": {
        "description": "`true` when this is the stored answer of an earlier request with the same Idempotency-Key",
        "schema": {"type": "string"},
    },
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "ETags (or `*`); the change happens only if one is the current version, else 412",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": f"^[!-~]{{1,{MAX_KEY_CHARS}}}$"},
    "description": "within 24 hours, the same key and request answer the first answer again "
    "and create nothing; the same key with another request is a 422",
}


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _error_response(status: int) -> dict[str, Any]:
    codes = ", ".join(f"`{code}`" for code, known in STATUSES.items() if known == status)
    description = f"{ERRORS[status][1]} (error codes: {codes})"
    headers = {"X-Request-Id": _header("RequestId")}
    if status == 503:
        headers["Retry-After"] = _header("RetryAfter")
    if status == 401:
        headers["WWW-Authenticate"] = _header("WWWAuthenticate")
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


# --- the document --------------------------------------------------------------------------------------


def document() -> dict[str, Any]:
    wanted = {(op.response.get(), "serialization") for op in OPERATIONS.values()}
    wanted |= {(op.request.get(), "validation") for op in OPERATIONS.values() if op.request is not None}
    refs, defs = models_json_schema(
        sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1])), ref_template=SCHEMA_REF
    )
    paths: dict[str, dict[str, Any]] = {
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi.get",
                "summary": "this document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the OpenAPI document",
                        "headers": {"X-Request-Id": _header("RequestId")},
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                },
            }
        },
    }
    for operation in OPERATIONS.values():
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sessions service",
            "version": "0.1.0",
            "description": "The memory layer for AI agents: a drop-in backend for the Julep v0.3 API. "
            'Every error answers `{"error": {"code", "message", "details"}}`; '
            "an unknown path is a 404 and a known path with another method a 405.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {**_fixed_bounds(defs.get("$defs", {})), "Error": ERROR_SCHEMA},
            "responses": {ERRORS[status][0]: _error_response(status) for status in sorted(ERRORS)},
            "headers": HEADERS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key of the service"}
            },
        },
    }


def _operation(operation: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    response = operation.response.get()
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_IDS.get(name, _UUID)}
        for name in operation.path_ids
    ]
    parameters += query_parameters(operation.query.get()) if operation.query is not None else []
    if operation.if_match:
        parameters.append(IF_MATCH)
    if operation.creates:
        parameters.append(IDEMPOTENCY_KEY)
    headers = {"X-Request-Id": _header("RequestId")}
    if operation.versioned:
        headers["ETag"] = _header("ETag")
    if operation.creates:
        headers["Idempotent-Replayed"] = _header("IdempotentReplayed")
    answer = {
        "description": (response.__doc__ or response.__name__).strip().splitlines()[0],
        "headers": headers,
        "content": {"application/json": {"schema": refs[(response, "serialization")]}},
    }
    result: dict[str, Any] = {
        "operationId": operation.name,
        "summary": operation.summary,
        "tags": [operation.name.split(".")[0]],
        "parameters": parameters,
        "responses": {
            str(operation.status): answer,
            **{
                str(status): {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
                for status in sorted({*operation.errors, *EVERY_ROUTE_ERRORS})
            },
        },
    }
    if operation.request is not None:
        result["requestBody"] = {
            "required": not operation.body_optional,
            "content": {"application/json": {"schema": refs[(operation.request.get(), "validation")]}},
        }
    return result


_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _fixed_bounds(schema: Any) -> Any:
    """pydantic writes `Field(ge=...)` over a type with a BeforeValidator (models.Float) as the
    bare keywords `ge`/`le`, which JSON Schema ignores; they become minimum/maximum here."""
    if isinstance(schema, list):
        return [_fixed_bounds(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    fixed = {key: _fixed_bounds(value) for key, value in schema.items()}
    if fixed.get("type") in ("number", "integer"):
        for keyword, standard in _BOUNDS.items():
            if keyword in fixed:
                fixed[standard] = fixed.pop(keyword)
    return fixed


# --- the direct invocation event (chalicelib/web/invoke.py) ------------------------------------------------

INVOKE_SCHEMA_PATH = "docs/invoke-event.schema.json"


def invoke_event_schema() -> dict[str, Any]:
    """The JSON Schema of a direct invocation's event, read off the same document as HTTP's
    contract: each operation's params are its path ids, its query parameters (a number, boolean or
    object may come as itself or as the text HTTP would carry), `body`, `if_match` and
    `idempotency_key` where HTTP takes them."""
    openapi = document()
    cases = []
    for operation in OPERATIONS.values():
        name = operation.name
        spec = openapi["paths"][operation.path][operation.method.lower()]
        properties: dict[str, Any] = {}
        required = []
        for parameter in spec["parameters"]:
            schema = parameter.get("schema") or parameter["content"]["application/json"]["schema"]
            if parameter["in"] == "path":
                properties[parameter["name"]] = schema
                required.append(parameter["name"])
            elif parameter["in"] == "query":
                properties[parameter["name"]] = (
                    schema if schema.get("type") == "string" else {"anyOf": [schema, {"type": "string"}]}
                )
            else:
                properties[parameter["name"].lower().replace("-", "_")] = parameter["schema"]
        if "requestBody" in spec:
            properties["body"] = spec["requestBody"]["content"]["application/json"]["schema"]
            if spec["requestBody"]["required"]:
                required.append("body")
        params = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
        cases.append(
            {
                "if": {"properties": {"operation": {"const": name}}},
                "then": {"properties": {"params": params}, **({"required": ["params"]} if required else {})},
            }
        )
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Sessions service: direct invocation event",
        "description": "The event of the `invoke` Lambda function (docs/invoke.md). Generated by "
        "`python -m chalicelib.web.openapi` from the operations table and the wire models.",
        "type": "object",
        "required": ["operation", "developer_id"],
        "additionalProperties": False,
        "properties": {
            "operation": {"enum": list(OPERATIONS)},
            "developer_id": {"type": "string", "pattern": auth.DEVELOPER_ID.pattern},
            "params": {"type": "object"},
        },
        "allOf": cases,
        "$defs": openapi["components"]["schemas"],
    }
    return json.loads(json.dumps(schema).replace('"#/components/schemas/', '"#/$defs/'))


if __name__ == "__main__":
    import pathlib

    target = pathlib.Path(__file__).resolve().parents[2] / INVOKE_SCHEMA_PATH
    target.write_text(json.dumps(invoke_event_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {target}")
