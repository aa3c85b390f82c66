"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.errors import GatewayError
from gateway.logs import request_id_var

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://crc-gateway.example/problems/"


def problem_response(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None,
    instance: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "instance": instance,
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _validation_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the input: it may be personal data.
    return [
        {
            "path": ".".join(str(part) for part in item.get("loc", ())),
            "message": item.get("msg", "invalid"),
            "type": item.get("type", "value_error"),
        }
        for item in error.errors()
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _domain(request: Request, error: GatewayError) -> JSONResponse:
        return problem_response(
            status=error.status,
            slug=error.slug,
            title=error.title,
            detail=error.detail,
            instance=request.url.path,
            errors=error.errors,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        return problem_response(
            status=422,
            slug="invalid-request",
            title="The request is not valid",
            detail="see errors for the fields at fault",
            instance=request.url.path,
            errors=_validation_errors(error),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        return problem_response(
            status=error.status_code,
            slug=slug,
            title=str(error.detail) if error.status_code < 500 else "Error",
            detail=None,
            instance=request.url.path,
            headers=dict(error.headers) if error.headers else None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # Starlette runs this outermost, after RequestContextMiddleware has reset the request
        # context: bind the request id again so the log line and the document both carry it.
        request_id: str | None = getattr(request.state, "request_id", None)
        token = request_id_var.set(request_id)
        try:
            log.error("unhandled error", exc_info=(type(error), error, None))
            return problem_response(
                status=500,
                slug="internal-error",
                title="Internal error",
                detail="the error was logged with this request id",
                instance=request.url.path,
                headers={"X-Request-Id": request_id} if request_id else None,
            )
        finally:
            request_id_var.reset(token)
