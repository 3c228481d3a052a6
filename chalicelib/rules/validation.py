"""Bodies held to the wire models (rules/models.py), and the bounds a model cannot state alone.
Every failure is a ValidationFailed (422) whose `details` name each field, in one form
(`field_errors`), and nothing is written."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from chalicelib.rules import models
from chalicelib.shared import clock, jsonio
from chalicelib.shared.errors import ValidationFailed
from chalicelib.store import Record, index


def field_errors(error: ValidationError, under: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """pydantic's errors as `details`: the field's dotted path (below `under`), message and type."""
    return [
        {
            "field": ".".join([*under, *(str(part) for part in item["loc"])]) or "body",
            "message": item["msg"],
            "type": item["type"],
        }
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def parse(model: type[BaseModel], body: dict[str, Any]) -> Any:
    """The body as an instance of `model`. The fields a patch or replace may never name are
    refused by name first (their own 422, not "extra field")."""
    refuse_immutable(model, body)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed("request body is invalid", details=field_errors(exc)) from None


def given_fields(parsed: BaseModel) -> dict[str, Any]:
    """The body's fields that are set and not null (a null means "not given", as the SDK sends)."""
    return {name: value for name, value in parsed if value is not None and name in parsed.model_fields_set}


def refuse_immutable(model: type[BaseModel], body: dict[str, Any]) -> None:
    present = sorted(getattr(model, "immutable", frozenset()) & body.keys())
    if present:
        resource = model.__name__.removesuffix("Patch").removesuffix("Replace").lower()
        raise ValidationFailed(
            f"{', '.join(present)} cannot be changed on a {resource}; nothing was changed",
            details=[
                {"field": name, "message": "cannot be changed after creation", "type": "immutable"} for name in present
            ],
        )


def require_uuid(field_name: str, value: str | None) -> None:
    if value is not None and not clock.is_uuid(value):
        raise ValidationFailed(
            f"{field_name} must be a UUID", details=[{"field": field_name, "message": "must be a UUID", "type": "uuid"}]
        )


def check_indexable(metadata: dict[str, Any]) -> None:
    """Every indexed value is an index entry written with the record in one transaction."""
    count = len(index.metadata_terms(metadata))
    if count > index.MAX_INDEXED_VALUES:
        raise ValidationFailed(
            f"metadata has {count} top-level string, number or boolean values; at most "
            f"{index.MAX_INDEXED_VALUES} are allowed (each is an index entry)",
            details=[
                {
                    "field": "metadata",
                    "message": f"at most {index.MAX_INDEXED_VALUES} indexable values",
                    "type": "too_many_indexed_values",
                }
            ],
        )


def check_default_settings(fields: dict[str, Any]) -> None:
    """An agent's default_settings are generation settings, held to the chat's own rules when
    written (models.ChatSettings: known names, ranges, types), so that a bad one is a 422 now
    instead of in every chat of the agent later."""
    settings = fields.get("default_settings")
    if not settings:
        return
    try:  # through JSON, stored numbers (Decimal) become the ints and floats the model expects
        models.ChatSettings.model_validate(json.loads(jsonio.dumps(settings)))
    except ValidationError as exc:
        raise ValidationFailed(
            "default_settings hold an invalid generation setting; nothing was changed",
            details=field_errors(exc, under=("default_settings",)),
        ) from None


def check_templates(kind: str, record: Record, changed: set[str]) -> None:
    """A session that renders templates gets its situation compiled when either changes, so a
    syntax error is a 422 now rather than at every chat later (rendering errors need the
    variables, and surface at chat or context time)."""
    if (
        kind == "session"
        and record.get("render_templates")
        and record.get("situation")
        and changed & {"situation", "render_templates"}
    ):
        from chalicelib.rules import templates

        templates.check(record["situation"], "situation")
