"""POST /v1/sources/{source}/records: a source pushes a batch of records."""

from __future__ import annotations

import uuid
from datetime import timedelta
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from adapters.base import Adapter, PayloadRejected
from gateway.api.deps import DatabaseDep, SettingsDep, require, require_source_access
from gateway.api.v1.shapes import FieldErrorOut
from gateway.db import Database
from gateway.errors import InvalidRequest, MalformedBody, UnsupportedMediaType
from gateway.logs import source_var
from gateway.models import utcnow
from gateway.services import idempotency, ingest
from gateway.services.clients import Principal, Role, validate_source_name
from gateway.settings import Settings

router = APIRouter(tags=["records"])


class RecordResultOut(BaseModel):
    index: int = Field(description="Position of the record in the request.")
    outcome: ingest.Outcome
    external_id: str | None = None
    person_id: uuid.UUID | None = Field(
        None, description="The golden person the record is linked to."
    )
    errors: list[FieldErrorOut] = Field(default_factory=list)


class BatchSummaryOut(BaseModel):
    received: int
    created: int
    updated: int
    unchanged: int
    rejected: int


class BatchResultOut(BaseModel):
    source: str
    summary: BatchSummaryOut
    results: list[RecordResultOut]


def _to_body(batch: ingest.BatchResult) -> str:
    counts = batch.counts()
    return BatchResultOut(
        source=batch.source,
        summary=BatchSummaryOut(received=len(batch.results), **counts),
        results=[
            RecordResultOut(
                index=result.index,
                outcome=result.outcome,
                external_id=result.external_id,
                person_id=result.person_id,
                errors=[FieldErrorOut(**error) for error in result.errors],
            )
            for result in batch.results
        ],
    ).model_dump_json()


# A canonical record nests about 7 deep. Far deeper input can still parse, and then exhaust the
# stack when its raw payload is stored (a 500), so it is refused here.
MAX_RECORD_NESTING = 32


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects in `value` nest more than `limit` deep (without recursing)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return False


def _parse(adapter: Adapter[Any], body: bytes, content_type: str, max_records: int) -> list[Any]:
    try:
        records = list(islice(adapter.parse(body, content_type), max_records + 1))
    except PayloadRejected as rejected:
        raise MalformedBody(rejected.message, errors=[dict(e) for e in rejected.errors]) from None
    if not records:
        raise InvalidRequest("a batch holds at least one record")
    if len(records) > max_records:
        raise InvalidRequest(f"a batch holds at most {max_records} records")
    if any(_nested_deeper_than(record, MAX_RECORD_NESTING) for record in records):
        raise MalformedBody(f"records nest at most {MAX_RECORD_NESTING} levels deep")
    return records


def _process(
    *,
    db: Database,
    settings: Settings,
    adapter: Adapter[Any],
    source: str,
    principal: Principal,
    body: bytes,
    content_type: str,
    key: str | None,
    request_fingerprint: str,
) -> tuple[int, str, bool]:
    """In a worker thread: parse, then one write transaction; returns status, body, replayed."""
    raw_records = _parse(adapter, body, content_type, settings.limits.max_batch_records)
    if key is not None:
        stored = db.write(
            lambda session: idempotency.claim(
                session,
                client_id=principal.client_id,
                key=key,
                request_fingerprint=request_fingerprint,
                now=utcnow(),
                retention=timedelta(hours=settings.idempotency.retention_hours),
                lock=timedelta(seconds=settings.idempotency.lock_seconds),
            )
        )
        if stored is not None:
            return stored.status, stored.body, True

    def work(session: Any) -> str:
        batch = ingest.ingest_batch(
            session,
            source=source,
            adapter=adapter,
            raw_records=raw_records,
            principal=principal,
            received_at=utcnow(),
        )
        response_body = _to_body(batch)
        if key is not None:
            idempotency.complete(
                session, client_id=principal.client_id, key=key, status=200, body=response_body
            )
        return response_body

    try:
        return 200, db.write(work), False
    except BaseException:
        if key is not None:
            db.write(
                lambda session: idempotency.release(session, client_id=principal.client_id, key=key)
            )
        raise


@router.post(
    "/v1/sources/{source}/records",
    response_model=BatchResultOut,
    summary="Push a batch of records from a source",
    description=(
        'A JSON object `{"records": [...]}` of 1..N canonical case records (N is '
        "`GATEWAY_LIMITS__MAX_BATCH_RECORDS`, default 1,000). Each record is validated on its "
        "own: valid records are stored even when others are rejected, and each record's outcome "
        "is reported. Re-sending an identical record is `unchanged` and emits no change. "
        "`Idempotency-Key` (IETF draft): the same key and body return the stored response; the "
        "same key with another body is 422; a key still in flight is 409. Keys are kept for "
        "`GATEWAY_IDEMPOTENCY__RETENTION_HOURS` (default and minimum 24)."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/RecordBatch"}}
            },
        }
    },
    responses={
        400: {"description": "Body is not a readable batch"},
        409: {"description": "Idempotency-Key in flight"},
        413: {"description": "Body too large"},
        415: {"description": "Unsupported content type"},
        422: {"description": "Batch size or Idempotency-Key reuse"},
    },
)
async def push_records(
    source: str,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require(Role.SOURCE))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    validate_source_name(source)
    require_source_access(principal, source, roles=set())
    source_var.set(source)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("records are sent as application/json")
    key = idempotency.parse_key(idempotency_key) if idempotency_key is not None else None
    body = await request.body()
    adapter: Adapter[Any] = request.app.state.adapters["canonical"]
    status, response_body, replayed = await run_in_threadpool(
        lambda: _process(
            db=db,
            settings=settings,
            adapter=adapter,
            source=source,
            principal=principal,
            body=body,
            content_type=content_type,
            key=key,
            request_fingerprint=idempotency.fingerprint(
                "POST", request.url.path, content_type, body
            ),
        )
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(
        response_body, status_code=status, media_type="application/json", headers=headers
    )
