"""The API's OpenAPI 3.1 description, generated from the routes table and the wire models."""
from __future__ import annotations

from typing import Any


def document(routes: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "Sessions service", "version": "0.1.0"}, "paths": {}}
