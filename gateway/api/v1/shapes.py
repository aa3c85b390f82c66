"""Response bodies shared by several v1 routers."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import Path, Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from gateway.services.clients import SOURCE_NAME
from gateway.services.ingest import MAX_EXTERNAL_ID
from gateway.settings import LimitSettings
from gateway.storable import INT64_MAX, first_unstorable


class FieldErrorOut(BaseModel):
    path: str = Field(description="Dotted path of the field at fault; empty for the whole record.")
    message: str
    type: str = Field(description="Machine-readable error type.")


class DataQualityWarningOut(BaseModel):
    path: str = Field(description="Dotted path of the identity field, e.g. person.date_of_birth.")
    rule: str = Field(description="missing, invalid or not_uk_postcode.")
    message: str
    value: Any = Field(None, description="The value as the source sent it; null when absent.")


# What the edge accepts, stated in the OpenAPI document so clients and validators see the same
# limits the handlers rely on: a database row id or cursor fits a signed 64-bit integer, a
# source name is what the registry allows, and no filter carries a NUL (PostgreSQL refuses it).
SOURCE_NAME_PATTERN: Final = SOURCE_NAME.pattern
NO_NUL_PATTERN: Final = r"^[^\x00]*$"

SourcePath = Annotated[
    str, Path(pattern=SOURCE_NAME_PATTERN, description="1-63 lower-case letters, digits, hyphens")
]
SourceFilter = Annotated[str | None, Query(pattern=SOURCE_NAME_PATTERN, max_length=63)]
RowIdPath = Annotated[int, Path(ge=1, le=INT64_MAX)]
RowCursor = Annotated[
    int, Query(ge=0, le=INT64_MAX, description="Continue after this id; 0 for the first page")
]


def _number_not_flag(value: Any) -> Any:
    # JSON Schema's integer takes 3.0 but not true or "3": neither does the API.
    if isinstance(value, bool | str):
        raise ValueError("expected an integer")
    return value


_ISO_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_moment(value: Any) -> Any:
    # A number (negative ones too) would otherwise be read as a Unix time: the contract says
    # ISO 8601, which starts with the date.
    if isinstance(value, str) and not _ISO_DATE_START.match(value):
        raise ValueError("expected an ISO 8601 date-time, such as 2026-01-31T09:00:00Z")
    return value


# A row id in a body: 2^53 keeps the bound exact wherever JSON numbers are read as doubles.
RowIdInt = Annotated[
    int,
    Field(ge=1, le=2**53),
    BeforeValidator(_number_not_flag),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 2**53}),
]
SourceName = Annotated[str, Field(pattern=SOURCE_NAME_PATTERN, max_length=63)]
_EVENT_TYPE = r"(person\.(created|updated|merged|split)|case\.(created|updated))"
_SOURCE = SOURCE_NAME_PATTERN.strip("^$")
# Repeated parameters, or one holding a comma-separated list.
EventTypeList = Annotated[str, Field(pattern=f"^{_EVENT_TYPE}(,{_EVENT_TYPE})*$")]
SourceNameList = Annotated[str, Field(pattern=f"^{_SOURCE}(,{_SOURCE})*$")]


class InputModel(BaseModel):
    """A request body: unknown fields are an error, and so is any value no column can store."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        found = first_unstorable(data)
        if found is not None:
            raise ValueError(f"{found.path}: {found.message}")
        return data


PageLimit = Annotated[
    int | None,
    Query(ge=1, description="Page size; past GATEWAY_LIMITS__MAX_PAGE_SIZE it is cut to it"),
]
# An external id as stored: the column's width, and no NUL (PostgreSQL refuses it).
ExternalIdQuery = Annotated[
    str | None, Query(min_length=1, max_length=MAX_EXTERNAL_ID, pattern=NO_NUL_PATTERN)
]
ExternalIdAfter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_EXTERNAL_ID,
        pattern=NO_NUL_PATTERN,
        description="The `next_after` of the previous page (an external id); omit to start",
    ),
]


def page_size(limit: int | None, limits: LimitSettings) -> int:
    """The size of a page asked for with `limit`: the default when none, at most the maximum."""
    return min(limit or limits.default_page_size, limits.max_page_size)
