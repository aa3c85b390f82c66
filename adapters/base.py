"""The adapter contract: how a source system's records become canonical case records.

An adapter is a small class. The gateway calls `parse` to split what a source sent into raw
records, then `translate` on each raw record to get a validated `schemas.CaseRecord`. Adapters
are pure translators: they never touch the database, the gateway's services or the network
clients of the core, and they report problems only by raising the errors defined here.

Errors are data about the record or the source, not control flow:

- `RecordRejected`: this one record is bad; the gateway quarantines it with the field errors
  and carries on with the rest of the batch.
- `PayloadRejected`: the payload as a whole cannot be read (not JSON, wrong shape); nothing in it
  can be attributed to a record, so the whole request is refused with a 4xx.
- `RetriableSourceError`: a polled source failed in a way worth retrying, maybe after
  `retry_after` seconds.
- `FatalSourceError`: stop polling this source and tell the operator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Generic, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from schemas import CaseRecord


class FieldError(TypedDict):
    """One problem with one field: a dotted path into the record and a human message."""

    path: str
    message: str
    type: str


class RecordRejected(Exception):
    """A record that cannot become a canonical record; carries field-level errors."""

    def __init__(self, errors: list[FieldError], *, external_id: str | None = None) -> None:
        super().__init__(f"{len(errors)} field error(s)")
        self.errors = errors
        self.external_id = external_id


class PayloadRejected(Exception):
    """A payload that cannot be split into records at all."""

    def __init__(self, message: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class SourceError(Exception):
    """Base of the errors a polled source raises."""


class RetriableSourceError(SourceError):
    """The source failed in a way worth trying again (timeout, 5xx, rate limit)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalSourceError(SourceError):
    """The source cannot be used until an operator acts (bad credentials, contract broken)."""


class AdapterConfig(BaseModel):
    """Base of every adapter's configuration model; unknown settings are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=AdapterConfig)


class Adapter(ABC, Generic[ConfigT]):
    """Translates one source system's records into canonical case records.

    Subclasses set `name` (the registry key), `version` (recorded with every stored record, so
    a quarantined record can be replayed through a fixed adapter) and `config_model`, and
    implement `parse` and `translate`.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    config_model: ClassVar[type[AdapterConfig]] = AdapterConfig
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    @abstractmethod
    def parse(self, payload: bytes, content_type: str) -> Iterator[Any]:
        """Yield the raw records in a payload, in order; raise PayloadRejected if unreadable."""

    @abstractmethod
    def translate(self, raw: Any) -> CaseRecord:
        """Return the canonical record for one raw record; raise RecordRejected if it is bad.

        Must be pure and deterministic: the same raw record always gives the same result.
        """

    def external_id_of(self, raw: Any) -> str | None:
        """The source's id for a raw record, best effort, for quarantining a rejected record."""
        return None


def field_errors_from(error: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """Pydantic validation errors as FieldErrors, without echoing the offending input."""
    errors: list[FieldError] = []
    for item in error.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in item["loc"])
        errors.append(
            FieldError(
                path=f"{prefix}.{path}" if prefix and path else (prefix or path),
                message=item["msg"],
                type=item["type"],
            )
        )
    return errors
