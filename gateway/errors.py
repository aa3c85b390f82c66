"""Domain errors. Services raise these; gateway.api.problems renders them as RFC 9457 documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import ValidationError


def validation_problems(error: ValidationError, *, prefix: Sequence[str] = ()) -> str:
    """Each mistake as ``<dotted path>: <message>``, joined by ``; ``, without the values given:
    a setting or a source's config may hold a secret, and a record personal data."""
    return "; ".join(
        f"{'.'.join([*prefix, *(str(part) for part in item['loc'])]) or '(top)'}: {item['msg']}"
        for item in error.errors(include_url=False, include_input=False)
    )


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose; knows its HTTP status and problem type."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class Moved(GatewayError):
    """The resource lives under another id now (a merged person): follow `Location`."""

    status = 308
    slug = "moved"
    title = "This person was merged into another"

    def __init__(self, detail: str, *, location: str) -> None:
        super().__init__(detail, headers={"Location": location})


class BadRequest(GatewayError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class MalformedBody(GatewayError):
    status = 400
    slug = "malformed-body"
    title = "The request body could not be parsed"


class Unauthenticated(GatewayError):
    status = 401
    slug = "unauthenticated"
    title = "A valid credential is required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="crc-gateway"'})


class Forbidden(GatewayError):
    status = 403
    slug = "forbidden"
    title = "This credential may not do that"


class NotFound(GatewayError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(GatewayError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class IdempotencyKeyInFlight(Conflict):
    slug = "idempotency-key-in-flight"
    title = "A request with this Idempotency-Key is still being processed"


class Gone(GatewayError):
    status = 410
    slug = "gone"
    title = "No longer available"


class PayloadTooLarge(GatewayError):
    status = 413
    slug = "payload-too-large"
    title = "The request body is too large"


class UnsupportedMediaType(GatewayError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported content type"


class InvalidRequest(GatewayError):
    status = 422
    slug = "invalid-request"
    title = "The request is not valid"


class IdempotencyKeyReused(InvalidRequest):
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used with a different request"


class ServiceUnavailable(GatewayError):
    status = 503
    slug = "service-unavailable"
    title = "Not ready"
