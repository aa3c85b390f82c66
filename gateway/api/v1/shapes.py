"""Response bodies shared by several v1 routers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FieldErrorOut(BaseModel):
    path: str = Field(description="Dotted path of the field at fault; empty for the whole record.")
    message: str
    type: str = Field(description="Machine-readable error type.")
