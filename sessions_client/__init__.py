"""A typed Python client of the sessions service (sync and async, on httpx), and session
backends for agent frameworks under `sessions_client.integrations`. A package of its own: the
service never imports it, and it never imports the service."""

from ._core import Policy
from .client import AsyncClient, Client
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    HistoryMoved,
    NotFound,
    PreconditionFailed,
    ProviderFailed,
    SessionEnded,
    ToolCallsPending,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    WriteOutcomeUnknown,
)

__all__ = [
    "AsyncClient",
    "Client",
    "Policy",
    "ApiError",
    "BadRequest",
    "Conflict",
    "HistoryMoved",
    "NotFound",
    "PreconditionFailed",
    "ProviderFailed",
    "SessionEnded",
    "ToolCallsPending",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "WriteOutcomeUnknown",
]
