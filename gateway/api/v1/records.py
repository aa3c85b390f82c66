"""POST /v1/sources/{source}/records: a source pushes a JSON batch, or uploads a file in its own
format; GET /v1/sources/{source}/records: what the gateway holds of it; GET /v1/imports/{id}: how
an upload's import went."""

from __future__ import annotations

import hashlib
import io
import tempfile
import uuid
from datetime import datetime, timedelta
from itertools import islice
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from adapters.base import Adapter, PayloadRejected, RawRecord
from adapters.canonical import JSON
from gateway.api.deps import (
    DatabaseDep,
    MatcherDep,
    SettingsDep,
    require,
    require_source_access,
)
from gateway.api.v1.shapes import (
    DataQualityWarningOut,
    ExternalIdAfter,
    ExternalIdQuery,
    FieldErrorOut,
    PageLimit,
    SourcePath,
    page_size,
)
from gateway.db import Database
from gateway.errors import InvalidRequest, MalformedBody
from gateway.logs import source_var
from gateway.models import utcnow
from gateway.services import idempotency, imports, ingest, reconciliation
from gateway.services.clients import Principal, Role
from gateway.services.identity import Matcher
from gateway.services.sources import SourceRegistry
from gateway.settings import Settings

router = APIRouter(tags=["records"])
SPOOL_IN_MEMORY_BYTES = 4 * 1024 * 1024


class RecordResultOut(BaseModel):
    index: int = Field(description="Position of the record in the request.")
    outcome: ingest.Outcome
    external_id: str | None = None
    person_id: uuid.UUID | None = Field(
        None, description="The golden person the record is linked to."
    )
    errors: list[FieldErrorOut] = Field(default_factory=list)
    resolution: ingest.PersonResolution | None = Field(
        None,
        description="What identity resolution did: `new_person` (no match), `linked` (to an "
        "existing person, see `method`) or `review` (a new person for now, with a possible "
        "match in the review queue). Null when unchanged, rejected, or an update that tied no "
        "other person to its own.",
    )
    method: ingest.LinkMethod | None = Field(
        None,
        description="How a `linked` record was linked: the strong identifier it shares "
        "(`crn`, `pnc`, `cro`, `noms`), the model's score (`probabilistic`), or `merged` "
        "when it tied several persons together, which were merged into one.",
    )
    warnings: list[DataQualityWarningOut] = Field(
        default_factory=list,
        description=(
            "Identity fields that were invalid or missing: the record was kept with each "
            "treated as missing for matching (a non-UK postal code is kept as text)."
        ),
    )


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


class ImportOut(BaseModel):
    """The outcome of a file in a source's own format, imported in chunks."""

    import_id: uuid.UUID
    source: str
    status: str = Field(description="running, completed, failed or interrupted")
    resumed_from: int = Field(0, description="Records an earlier attempt had already stored.")
    summary: BatchSummaryOut
    rejected: list[RecordResultOut] = Field(
        default_factory=list,
        description="The first rejected records with their errors; the rest are in quarantine.",
    )
    failure: str | None = None

    @classmethod
    def of(cls, summary: imports.ImportSummary) -> ImportOut:
        return cls(
            import_id=summary.import_id,
            source=summary.source,
            status=summary.status,
            resumed_from=summary.resumed_from,
            summary=BatchSummaryOut(
                received=summary.records,
                created=summary.created,
                updated=summary.updated,
                unchanged=summary.unchanged,
                rejected=summary.rejected,
            ),
            rejected=[_result_out(result) for result in summary.rejected_samples],
            failure=summary.failure,
        )


def _result_out(result: ingest.RecordOutcome) -> RecordResultOut:
    return RecordResultOut(
        index=result.index,
        outcome=result.outcome,
        external_id=result.external_id,
        person_id=result.person_id,
        errors=[FieldErrorOut(**error) for error in result.errors],
        resolution=result.resolution,
        method=result.method,
        warnings=[DataQualityWarningOut(**warning) for warning in result.warnings],
    )


def _to_body(batch: ingest.BatchResult) -> str:
    counts = batch.counts()
    return BatchResultOut(
        source=batch.source,
        summary=BatchSummaryOut(received=len(batch.results), **counts),
        results=[_result_out(result) for result in batch.results],
    ).model_dump_json()


def _parse(
    adapter: Adapter[Any], body: bytes, content_type: str, max_records: int
) -> list[RawRecord]:
    try:
        records = list(islice(adapter.parse(io.BytesIO(body), content_type), max_records + 1))
    except PayloadRejected as rejected:
        raise MalformedBody(rejected.message, errors=[dict(e) for e in rejected.errors]) from None
    if not records:
        raise InvalidRequest("a batch holds at least one record")
    if len(records) > max_records:
        raise InvalidRequest(f"a batch holds at most {max_records} records")
    return records


def _claim(
    db: Database, settings: Settings, principal: Principal, key: str, request_fingerprint: str
) -> idempotency.StoredResponse | None:
    return db.write(
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


def _release(db: Database, principal: Principal, key: str) -> None:
    db.write(lambda session: idempotency.release(session, client_id=principal.client_id, key=key))


def _process_batch(
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
    matcher: Matcher,
    strict: bool,
) -> tuple[int, str, bool]:
    """In a worker thread: parse, then one write transaction; returns status, body, replayed."""
    raw_records = _parse(adapter, body, content_type, settings.limits.max_batch_records)
    if key is not None:
        stored = _claim(db, settings, principal, key, request_fingerprint)
        if stored is not None:
            return stored.status, stored.body, True

    def work(session: Session) -> str:
        batch = ingest.ingest_batch(
            session,
            source=source,
            adapter=adapter,
            raw_records=raw_records,
            principal=principal,
            received_at=utcnow(),
            matcher=matcher,
            strict=strict,
        )
        response_body = _to_body(batch)
        if key is not None:
            # Stored in the same transaction as the work it describes.
            idempotency.complete(
                session, client_id=principal.client_id, key=key, status=200, body=response_body
            )
        return response_body

    try:
        return 200, db.write(work), False
    except BaseException:
        if key is not None:
            _release(db, principal, key)
        raise


def _process_upload(
    *,
    db: Database,
    settings: Settings,
    adapter: Adapter[Any],
    source: str,
    principal: Principal,
    spool: IO[bytes],
    content_type: str,
    digest: str,
    size: int,
    filename: str | None,
    key: str | None,
    request_fingerprint: str,
    matcher: Matcher,
    strict: bool,
) -> tuple[int, str, bool]:
    """In a worker thread: import the spooled file in chunks; returns status, body, replayed."""
    if key is not None:
        stored = _claim(db, settings, principal, key, request_fingerprint)
        if stored is not None:
            return stored.status, stored.body, True
    try:
        summary = imports.run_import(
            db,
            source=source,
            adapter=adapter,
            stream=spool,
            content_type=content_type,
            filename=filename,
            file_sha256=digest,
            file_size=size,
            principal=principal,
            chunk_records=settings.limits.import_chunk_records,
            matcher=matcher,
            strict=strict,
        )
    except BaseException:
        if key is not None:
            _release(db, principal, key)
        raise
    response_body = ImportOut.of(summary).model_dump_json()
    if key is not None:
        # Chunks are committed as they go; a retry after a crash resumes the import instead.
        db.write(
            lambda session: idempotency.complete(
                session, client_id=principal.client_id, key=key, status=200, body=response_body
            )
        )
    return 200, response_body, False


async def _spool(request: Request) -> tuple[IO[bytes], str, int]:
    """Write the streamed body to a temporary file (memory up to a few MB, then disk)."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
    digest, size = hashlib.sha256(), 0
    try:
        async for chunk in request.stream():
            spool.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, digest.hexdigest(), size


@router.post(
    "/v1/sources/{source}/records",
    response_model=BatchResultOut | ImportOut,
    summary="Push records from a source: a JSON batch, or a file in the source's own format",
    description=(
        'A JSON object `{"records": [...]}` of 1..N canonical case records (N is '
        "`GATEWAY_LIMITS__MAX_BATCH_RECORDS`, default 1,000). Each record is validated on its "
        "own: valid records are stored even when others are rejected, and each record's outcome "
        "is reported. Re-sending an identical record is `unchanged` and emits no change. "
        "`Idempotency-Key` (IETF draft): the same key and body return the stored response; the "
        "same key with another body is 422; a key still in flight is 409. Keys are kept for "
        "`GATEWAY_IDEMPOTENCY__RETENTION_HOURS` (default and minimum 24).\n\n"
        "Any other content type the source's adapter reads (`text/csv`, `application/xml`, "
        "`application/x-ndjson`, ...) is a file upload: it is streamed to disk, parsed by the "
        "adapter as it is read, and committed in chunks; the answer is an import summary with "
        "the first rejected records (the rest are in the quarantine). Uploads may be up to "
        "`GATEWAY_LIMITS__MAX_UPLOAD_BYTES` (default 1 GiB). Re-uploading a file whose import "
        "was interrupted resumes it. An optional `X-Filename` header names the file in the "
        "import's record."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/RecordBatch"}},
                "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "application/xml": {"schema": {"type": "string", "format": "binary"}},
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
    source: SourcePath,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    matcher: MatcherDep,
    principal: Annotated[Principal, Depends(require(Role.SOURCE))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    require_source_access(principal, source, roles=set())
    source_var.set(source)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    sources: SourceRegistry = request.app.state.sources
    adapter = sources.adapter_for(source, content_type)
    key = idempotency.parse_key(idempotency_key) if idempotency_key is not None else None
    if content_type != JSON:
        spool, digest, size = await _spool(request)
        try:
            status, response_body, replayed = await run_in_threadpool(
                lambda: _process_upload(
                    db=db,
                    settings=settings,
                    adapter=adapter,
                    source=source,
                    principal=principal,
                    spool=spool,
                    content_type=content_type,
                    digest=digest,
                    size=size,
                    filename=request.headers.get("x-filename"),
                    key=key,
                    request_fingerprint=idempotency.fingerprint(
                        "POST", request.url.path, content_type, digest.encode()
                    ),
                    matcher=matcher,
                    strict=sources.strict(source),
                )
            )
        finally:
            spool.close()
        return _respond(status, response_body, replayed)
    body = await request.body()
    status, response_body, replayed = await run_in_threadpool(
        lambda: _process_batch(
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
            matcher=matcher,
            strict=sources.strict(source),
        )
    )
    return _respond(status, response_body, replayed)


def _respond(status: int, body: str, replayed: bool) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


@router.get(
    "/v1/imports/{import_id}", response_model=ImportOut, summary="Progress of a file import"
)
def get_import(
    import_id: uuid.UUID,
    db: DatabaseDep,
    principal: Annotated[Principal, Depends(require(Role.SOURCE, Role.OPERATOR))],
) -> ImportOut:
    row = db.read(lambda session: imports.get_import(session, import_id))
    require_source_access(principal, row.source, roles={Role.OPERATOR})
    return ImportOut.of(imports.ImportSummary.of(row))


class StoredRecordOut(BaseModel):
    id: uuid.UUID = Field(description="The source record's id in the gateway.")
    external_id: str
    version: int = Field(description="How many distinct versions of it the gateway received.")
    person_id: uuid.UUID = Field(description="The live person it is linked to, after any merges.")
    received_at: datetime = Field(description="When its current version arrived.")
    source_updated_at: datetime | None = Field(
        description="When the source says it last changed it, if it said."
    )
    warnings: list[DataQualityWarningOut] = Field(
        description="Data-quality warnings on its current version."
    )

    @classmethod
    def of(cls, stored: reconciliation.StoredRecord) -> StoredRecordOut:
        record = stored.record
        return cls(
            id=record.id,
            external_id=record.external_id,
            version=record.version,
            person_id=stored.person_id,
            received_at=record.received_at,
            source_updated_at=record.source_updated_at,
            warnings=[DataQualityWarningOut.model_validate(w) for w in stored.warnings],
        )


class StoredRecordPageOut(BaseModel):
    items: list[StoredRecordOut]
    next_after: str | None = Field(
        None, description="Pass as `after` for the next page; null on the last."
    )


@router.get(
    "/v1/sources/{source}/records",
    response_model=StoredRecordPageOut,
    summary="What the gateway holds of a source, for reconciliation",
    description="The source's stored records in pages ordered by external id, each with its "
    "version, the person it is linked to now and its data-quality warnings. `external_id` "
    "narrows the list to that record. Central systems and operators read any source; a source "
    "client its own.",
)
def list_source_records(
    source: SourcePath,
    db: DatabaseDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require(Role.SOURCE, Role.CENTRAL, Role.OPERATOR))],
    external_id: ExternalIdQuery = None,
    after: ExternalIdAfter = None,
    limit: PageLimit = None,
) -> StoredRecordPageOut:
    require_source_access(principal, source, roles={Role.CENTRAL, Role.OPERATOR})
    size = page_size(limit, settings.limits)
    page = db.write(
        lambda session: reconciliation.list_source_records(
            session,
            source=source,
            external_id=external_id,
            after=after,
            limit=size,
            principal=principal,
            now=utcnow(),
        )
    )
    return StoredRecordPageOut(
        items=[StoredRecordOut.of(item) for item in page],
        next_after=page[-1].record.external_id if len(page) == size else None,
    )
