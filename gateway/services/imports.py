"""Importing a file in a source's own format: streamed through its adapter, committed in chunks.

Each chunk is one write transaction that stores its records and advances the import's
`records_done`; so an import interrupted at any point resumes after the last committed chunk,
and nothing is stored twice (records already stored would come back `unchanged` anyway, and
a rejected payload already in quarantine is counted, not copied).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import IO, Any

from sqlalchemy.orm import Session

from adapters.base import Adapter, PayloadRejected, RawRecord
from gateway.db import Database
from gateway.errors import MalformedBody, NotFound
from gateway.models import Import, utcnow
from gateway.repositories import imports as imports_repo
from gateway.services import ingest
from gateway.services.clients import Principal
from gateway.services.identity import Matcher
from gateway.services.ingest import Outcome, RecordOutcome

REJECTED_SAMPLE_SIZE = 100
ProgressCallback = Callable[[int, "ImportSummary"], None]


@dataclass
class ImportSummary:
    import_id: uuid.UUID
    source: str
    status: str
    resumed_from: int = 0
    records: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejected_samples: list[RecordOutcome] = field(default_factory=list)
    failure: str | None = None

    @classmethod
    def of(cls, row: Import) -> ImportSummary:
        return cls(
            import_id=row.id,
            source=row.source,
            status=row.status,
            records=row.records_done,
            created=row.created,
            updated=row.updated,
            unchanged=row.unchanged,
            rejected=row.rejected,
            failure=row.failure,
        )


class CountingReader:
    """A binary stream wrapper that counts the bytes read through it (for progress)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.bytes_read += len(chunk)
        return chunk

    def read1(self, size: int = -1) -> bytes:
        read1 = getattr(self._stream, "read1", self._stream.read)
        chunk: bytes = read1(size)
        self.bytes_read += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int = -1) -> bytes:
        line = self._stream.readline(size)
        self.bytes_read += len(line)
        return line

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return bool(self._stream.closed)

    def close(self) -> None:
        """The caller owns the underlying stream."""

    def flush(self) -> None:
        """Nothing to flush on a reader."""


def sha256_of(stream: IO[bytes], *, block: int = 1024 * 1024) -> tuple[str, int]:
    """Digest and size of a seekable stream, read in blocks; leaves it at the start."""
    digest, size = hashlib.sha256(), 0
    stream.seek(0)
    while chunk := stream.read(block):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.hexdigest(), size


def _start_or_resume(
    session: Session,
    *,
    source: str,
    adapter: Adapter[Any],
    content_type: str,
    filename: str | None,
    file_sha256: str,
    file_size: int,
    principal: Principal | None,
) -> Import:
    now = utcnow()
    row = imports_repo.unfinished_for_file(session, source, file_sha256)
    if row is not None:
        row.status = "running"
        row.failure = None
        row.updated_at = now
        return row
    row = Import(
        id=uuid.uuid4(),
        source=source,
        adapter=adapter.name,
        content_type=content_type,
        filename=(filename or "")[:255] or None,
        file_sha256=file_sha256,
        file_size=file_size,
        status="running",
        records_done=0,
        created=0,
        updated=0,
        unchanged=0,
        rejected=0,
        client_id=principal.client_id if principal else None,
        started_at=now,
        updated_at=now,
    )
    imports_repo.add(session, row)
    return row


def _commit_chunk(
    session: Session,
    *,
    import_id: uuid.UUID,
    source: str,
    adapter: Adapter[Any],
    chunk: list[RawRecord],
    principal: Principal | None,
    matcher: Matcher | None,
    strict: bool,
) -> ingest.BatchResult:
    now = utcnow()
    batch = ingest.ingest_batch(
        session,
        source=source,
        adapter=adapter,
        raw_records=chunk,
        principal=principal,
        received_at=now,
        import_id=import_id,
        matcher=matcher,
        strict=strict,
    )
    row = imports_repo.get(session, import_id, for_update=True)
    if row is None:  # pragma: no cover - the row is created before any chunk
        raise NotFound("import vanished")
    counts = batch.counts()
    row.records_done += len(chunk)
    row.created += counts[Outcome.CREATED.value]
    row.updated += counts[Outcome.UPDATED.value]
    row.unchanged += counts[Outcome.UNCHANGED.value]
    row.rejected += counts[Outcome.REJECTED.value]
    row.updated_at = now
    return batch


def _finish(db: Database, import_id: uuid.UUID, *, status: str, failure: str | None) -> Import:
    def work(session: Session) -> Import:
        row = imports_repo.get(session, import_id, for_update=True)
        if row is None:  # pragma: no cover
            raise NotFound("import vanished")
        row.status = status
        row.failure = failure
        row.updated_at = row.finished_at = utcnow()
        return row

    return db.write(work)


def run_import(
    db: Database,
    *,
    source: str,
    adapter: Adapter[Any],
    stream: IO[bytes],
    content_type: str,
    filename: str | None,
    file_sha256: str,
    file_size: int,
    principal: Principal | None,
    chunk_records: int,
    on_progress: ProgressCallback | None = None,
    on_batch: Callable[[ingest.BatchResult], None] | None = None,
    matcher: Matcher | None = None,
    strict: bool = False,
) -> ImportSummary:
    """Import a whole stream (resuming an unfinished import of the same file); returns the totals.

    A payload the adapter cannot read at all ends the import as `failed` with the reason, keeping
    every chunk committed before it; it is then raised as MalformedBody.
    """
    row = db.write(
        lambda session: _start_or_resume(
            session,
            source=source,
            adapter=adapter,
            content_type=content_type,
            filename=filename,
            file_sha256=file_sha256,
            file_size=file_size,
            principal=principal,
        )
    )
    summary = ImportSummary.of(row)
    summary.resumed_from = row.records_done
    reader = CountingReader(stream)
    try:
        # Inside the try: an adapter may refuse the payload as soon as parse is called.
        records = adapter.parse(reader, content_type)  # type: ignore[arg-type]
        # Records committed by an earlier attempt are parsed again (the stream has no index)
        # but not stored again.
        for _ in islice(records, summary.resumed_from):
            pass
        while chunk := list(islice(records, chunk_records)):
            batch = db.write(
                partial(
                    _commit_chunk,
                    import_id=summary.import_id,
                    source=source,
                    adapter=adapter,
                    chunk=chunk,
                    principal=principal,
                    matcher=matcher,
                    strict=strict,
                )
            )
            _tally(summary, batch, offset=summary.records)
            if on_batch is not None:
                on_batch(batch)
            if on_progress is not None:
                on_progress(reader.bytes_read, summary)
    except PayloadRejected as error:
        finished = _finish(db, summary.import_id, status="failed", failure=error.message[:500])
        raise MalformedBody(
            f"{error.message} (after {finished.records_done} records, which are stored; "
            f"import {finished.id})",
            errors=[dict(e) for e in error.errors],
        ) from None
    except BaseException:
        _finish(db, summary.import_id, status="interrupted", failure="interrupted")
        raise
    finished = _finish(db, summary.import_id, status="completed", failure=None)
    samples = summary.rejected_samples
    summary = ImportSummary.of(finished)
    summary.resumed_from = row.records_done
    summary.rejected_samples = samples
    return summary


def _tally(summary: ImportSummary, batch: ingest.BatchResult, *, offset: int) -> None:
    counts = batch.counts()
    summary.records += len(batch.results)
    summary.created += counts[Outcome.CREATED.value]
    summary.updated += counts[Outcome.UPDATED.value]
    summary.unchanged += counts[Outcome.UNCHANGED.value]
    summary.rejected += counts[Outcome.REJECTED.value]
    for result in batch.results:
        room = len(summary.rejected_samples) < REJECTED_SAMPLE_SIZE
        if result.outcome is Outcome.REJECTED and room:
            result.index += offset
            summary.rejected_samples.append(result)


def get_import(session: Session, import_id: uuid.UUID) -> Import:
    row = imports_repo.get(session, import_id)
    if row is None:
        raise NotFound("no import with that id")
    return row
