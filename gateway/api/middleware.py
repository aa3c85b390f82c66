"""Pure ASGI middleware: request context and access log, and the request body limit."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.problems import problem_response
from gateway.errors import PayloadTooLarge
from gateway.logs import client_id_var, request_id_var, source_var

access_log = logging.getLogger("gateway.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_RECORDS_PATH = re.compile(r"^/v1/sources/[^/]+/records$")


class RequestContextMiddleware:
    """Binds a request id for logs and problem documents, and writes one access line per request.

    The access line names the route template, never the concrete path or query string, which
    can carry identifiers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        tokens = (request_id_var.set(request_id), client_id_var.set(None), source_var.set(None))
        # Also kept in request.state for the 500 handler, which runs after this context is reset.
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            access_log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "route": getattr(route, "path", "unmatched"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client_id": client_id_var.get(),
                },
            )
            request_id_var.reset(tokens[0])
            client_id_var.reset(tokens[1])
            source_var.reset(tokens[2])


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413, without ever holding more than the limit.

    A declared Content-Length over the limit is refused before reading; a chunked body is
    counted as it streams and reading stops at the first byte past the limit. A file upload
    (a POST of records in anything but a JSON batch) is streamed to disk by its handler, so it
    gets the larger upload limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    def _limit_for(self, scope: Scope, headers: dict[bytes, bytes]) -> int:
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if (
            scope.get("method") == "POST"
            and _RECORDS_PATH.fullmatch(scope.get("path", ""))
            and content_type not in (b"", b"application/json")
        ):
            return self.max_upload_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
        limit = self._limit_for(scope, headers)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        too_large = started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise PayloadTooLarge(self._detail(limit))
            return message

        async def guarded_send(message: Message) -> None:
            # Whatever the app made of the refused body (FastAPI turns it into a 400 "error
            # parsing the body"), the client gets the 413 sent below instead.
            nonlocal started
            if too_large and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large or started:
                raise
        if too_large and not started:
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            status=PayloadTooLarge.status,
            slug=PayloadTooLarge.slug,
            title=PayloadTooLarge.title,
            detail=self._detail(limit),
            instance=scope.get("path", ""),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    @staticmethod
    def _detail(limit: int) -> str:
        return f"request bodies here are limited to {limit} bytes"
