"""Ingest: a batch of raw records from one source becomes source records, persons, cases and
change-log rows, all in the caller's single transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from time import perf_counter
from typing import Any

import orjson
from sqlalchemy.orm import Session

from adapters.base import Adapter, FieldError, RawRecord, RecordRejected
from gateway.matching import MatchView, view_of
from gateway.models import Case, Person, RejectedRecord, SourceRecord, SourceRecordVersion
from gateway.repositories import matching as matching_repo
from gateway.repositories import persons as persons_repo
from gateway.repositories import source_records as source_records_repo
from gateway.repositories import source_stats as stats_repo
from gateway.repositories import subscriptions as subscriptions_repo
from gateway.services import audit, changes, data_quality
from gateway.services.clients import Principal
from gateway.services.golden import LinkedRecord, SurvivorshipPolicy, build_golden
from gateway.services.identity import BatchResolver, Matcher, Resolution, default_matcher
from gateway.storable import Unstorable, as_json_text, first_unstorable, safe_text
from schemas import SCHEMA_VERSION, CaseRecord

MAX_EXTERNAL_ID = 128


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


class PersonResolution(StrEnum):
    """What identity resolution did with a record in this request."""

    NEW_PERSON = "new_person"
    LINKED = "linked"
    REVIEW = "review"


class LinkMethod(StrEnum):
    """How a record was linked: a shared strong identifier, the model's score, or a merge."""

    CRN = "crn"
    PNC = "pnc"
    CRO = "cro"
    NOMS = "noms"
    PROBABILISTIC = "probabilistic"
    MERGED = "merged"


@dataclass
class RecordOutcome:
    index: int
    outcome: Outcome
    external_id: str | None = None
    person_id: uuid.UUID | None = None
    source_record_id: uuid.UUID | None = None
    errors: list[FieldError] = field(default_factory=list)
    # None when no identity decision was made: unchanged, rejected, or an update that tied no
    # one else to its person.
    resolution: PersonResolution | None = None
    method: LinkMethod | None = None  # set when `resolution` is LINKED
    warnings: list[data_quality.DataQualityWarning] = field(default_factory=list)


def resolution_of(resolution: Resolution) -> tuple[PersonResolution, LinkMethod | None]:
    """The resolver's decision about a new record, in the terms the push response uses."""
    if resolution.person_id is None:
        if resolution.pending_review:
            return PersonResolution.REVIEW, None
        return PersonResolution.NEW_PERSON, None
    if resolution.merge:
        return PersonResolution.LINKED, LinkMethod.MERGED
    if resolution.identifiers:
        # The strongest kind shared (CRN, then PNC, CRO, NOMS), as the resolver lists them.
        return PersonResolution.LINKED, LinkMethod(resolution.identifiers[0])
    return PersonResolution.LINKED, LinkMethod.PROBABILISTIC


@dataclass
class BatchResult:
    source: str
    results: list[RecordOutcome]
    match_seconds: list[float] = field(default_factory=list)
    """Seconds identity resolution spent on each new record (its share of the batch's candidate
    lookup included); empty when matching is off."""

    def counts(self) -> dict[str, int]:
        tally = {outcome.value: 0 for outcome in Outcome}
        for result in self.results:
            tally[result.outcome.value] += 1
        return tally


def content_hash(canonical: dict[str, Any]) -> str:
    """A digest of what a dumped record says, ignoring when the gateway happened to receive it."""
    provenance = {k: v for k, v in canonical["provenance"].items() if k != "received_at"}
    encoded = orjson.dumps({**canonical, "provenance": provenance}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(encoded).hexdigest()


@dataclass
class _Accepted:
    index: int
    raw: Any
    record: CaseRecord
    canonical: dict[str, Any]
    digest: str
    warnings: list[data_quality.DataQualityWarning]


@dataclass
class _Touched:
    """What a batch did to one person, collected so the change events come out in order."""

    person: Person
    is_new: bool
    case_events: list[dict[str, Any]] = field(default_factory=list)
    # This batch's source records of the person, new or changed, by id.
    records: dict[uuid.UUID, SourceRecord] = field(default_factory=dict)
    # Persons merged into this one in this batch (those that existed before it).
    merged_ids: list[uuid.UUID] = field(default_factory=list)
    # Set when this person was itself merged into another in this batch.
    merged_into: uuid.UUID | None = None


def payload_hash(data: Any) -> str:
    """A digest of a raw record's data, to recognise the same bad record sent again."""
    encoded = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def ingest_batch(
    session: Session,
    *,
    source: str,
    adapter: Adapter[Any],
    raw_records: Sequence[RawRecord],
    principal: Principal | None,
    received_at: datetime,
    import_id: uuid.UUID | None = None,
    matcher: Matcher | None = None,
    strict: bool = False,
) -> BatchResult:
    """Validate, store and link every record; rejected ones are quarantined with their errors.

    A record whose identity fields are bad is kept with them dropped and data-quality warnings
    (see `gateway.services.data_quality`), unless the source is `strict`. New records are
    matched to persons (see `gateway.services.identity`) with `matcher`, the packaged model
    when none is given.
    """
    # Nothing is flushed until the change rows are appended: every row goes out once, in one
    # statement per table, already holding its final values.
    with session.no_autoflush:
        return _ingest(
            session,
            source=source,
            adapter=adapter,
            raw_records=raw_records,
            principal=principal,
            received_at=received_at,
            import_id=import_id,
            matcher=matcher or default_matcher(),
            strict=strict,
        )


def _ingest(
    session: Session,
    *,
    source: str,
    adapter: Adapter[Any],
    raw_records: Sequence[RawRecord],
    principal: Principal | None,
    received_at: datetime,
    import_id: uuid.UUID | None,
    matcher: Matcher,
    strict: bool,
) -> BatchResult:
    results: list[RecordOutcome | None] = [None] * len(raw_records)
    accepted: list[_Accepted] = []
    rejected: list[tuple[int, RawRecord, list[FieldError], str | None]] = []
    for index, raw in enumerate(raw_records):
        if raw.errors:
            rejected.append((index, raw, list(raw.errors), _kept_id(raw.external_id)))
            continue
        try:
            record, canonical, warnings = translate_storable(
                adapter, raw.data, source=source, received_at=received_at, strict=strict
            )
        except RecordRejected as error:
            external_id = _kept_id(error.external_id) or _kept_id(raw.external_id)
            rejected.append((index, raw, error.errors, external_id))
            continue
        accepted.append(
            _Accepted(
                index=index,
                raw=raw.data,
                record=record,
                canonical=canonical,
                digest=content_hash(canonical),
                warnings=warnings,
            )
        )
    _quarantine(session, source, adapter, rejected, received_at, import_id)
    for index, _raw, errors, external_id in rejected:
        results[index] = RecordOutcome(
            index=index, outcome=Outcome.REJECTED, external_id=external_id, errors=errors
        )

    resolver: BatchResolver | None = None
    views: dict[int, MatchView] = {}
    if matcher.enabled:
        matcher = matcher.for_session(session)
        resolver = BatchResolver(session, matcher, now=received_at)
        views = {item.index: view_of(item.canonical["person"]) for item in accepted}
        # First, before any row lock: writers whose records could match each other take turns.
        resolver.lock_keys(views.values())
    existing = source_records_repo.get_many_for_update(
        session, source, (item.record.provenance.external_id for item in accepted)
    )
    existing_cases = persons_repo.cases_by_source_record(
        session, (record.id for record in existing.values())
    )
    locked_persons = persons_repo.get_many_for_update(
        session, (record.person_id for record in existing.values())
    )
    persons_by_crn: dict[str, Person] = {}
    if resolver is not None:
        # New records and changed ones (an update may tie its person to others).
        resolver.prefetch(
            [
                views[item.index]
                for item in accepted
                if item.record.provenance.external_id not in existing
                or existing[item.record.provenance.external_id].content_hash != item.digest
            ]
        )
    else:
        new_crns = [
            item.record.person.identifiers.crn
            for item in accepted
            if item.record.provenance.external_id not in existing
            and item.record.person.identifiers.crn
        ]
        persons_by_crn = persons_repo.first_by_crns(session, (crn for crn in new_crns if crn))

    touched: dict[uuid.UUID, _Touched] = {}
    match_seconds: list[float] = []
    # Persons an update may have taken the evidence from that held their records together.
    recheck: set[uuid.UUID] = set()
    rechecked_records: set[uuid.UUID] = set()
    for item in accepted:
        external_id = item.record.provenance.external_id
        stored = existing.get(external_id)
        decided: tuple[PersonResolution, LinkMethod | None] | None = None
        if stored is not None and stored.content_hash == item.digest:
            results[item.index] = RecordOutcome(
                index=item.index,
                outcome=Outcome.UNCHANGED,
                external_id=external_id,
                person_id=stored.person_id,
                source_record_id=stored.id,
                warnings=item.warnings,
            )
            continue
        if stored is None:
            record_id = uuid.uuid4()
            if resolver is not None:
                started = perf_counter()
                person, resolution = _resolve_new_record(
                    session, resolver, record_id, views[item.index], touched, received_at
                )
                match_seconds.append(perf_counter() - started)
                decided = resolution_of(resolution)
            else:
                crn = item.record.person.identifiers.crn
                decided = (
                    (PersonResolution.LINKED, LinkMethod.CRN)
                    if crn and crn in persons_by_crn
                    else (PersonResolution.NEW_PERSON, None)
                )
                person = _person_for_new_record(
                    session, item.record, persons_by_crn, touched, received_at
                )
            stored = SourceRecord(
                id=record_id,
                source=source,
                external_id=external_id,
                person_id=person.id,
                version=0,
                adapter=adapter.name,
                adapter_version=adapter.version,
                created_at=received_at,
                pinned=False,
            )
            source_records_repo.add(session, stored)
            existing[external_id] = stored
            outcome = Outcome.CREATED
        else:
            # Either locked up front, or created (or merged into) earlier in this same batch.
            if stored.person_id not in touched:
                touched[stored.person_id] = _Touched(
                    person=locked_persons.get(stored.person_id)
                    or persons_repo.get_many_for_update(session, [stored.person_id])[
                        stored.person_id
                    ],
                    is_new=False,
                )
            if resolver is not None and _rematch_updated(
                session, resolver, stored, views[item.index], touched, received_at
            ):
                decided = (PersonResolution.LINKED, LinkMethod.MERGED)
            elif resolver is not None and not stored.pinned:
                recheck.add(stored.person_id)
                rechecked_records.add(stored.id)
            person = touched[stored.person_id].person
            outcome = Outcome.UPDATED
        _apply_version(session, stored, item, adapter, received_at)
        touched[person.id].records[stored.id] = stored
        case_event = _upsert_case(session, stored, item.record, existing_cases, received_at)
        if case_event is not None:
            touched[person.id].case_events.append(case_event)
        results[item.index] = RecordOutcome(
            index=item.index,
            outcome=outcome,
            external_id=external_id,
            person_id=person.id,
            source_record_id=stored.id,
            resolution=decided[0] if decided else None,
            method=decided[1] if decided else None,
            warnings=item.warnings,
        )

    if resolver is not None:
        resolver.finish()
        share = resolver.prefetch_seconds / len(match_seconds) if match_seconds else 0.0
        match_seconds = [seconds + share for seconds in match_seconds]
    person_events = _refresh_golden_records(
        session, touched, received_at, matcher.policy, source=source
    )
    done = [result for result in results if result is not None]
    if resolver is not None:
        for result in done:
            if result.person_id is not None:
                result.person_id = resolver.person_of(result.person_id)
        if recheck:
            person_events += _reevaluate(
                session,
                matcher,
                {resolver.person_of(p) for p in recheck},
                rechecked_records,
                done,
                received_at,
            )
    batch = BatchResult(source=source, results=done, match_seconds=match_seconds)
    stats_repo.bump(
        session, source, {"received": len(done), **batch.counts()}, received_at=received_at
    )
    _audit(session, batch, touched, principal, received_at)
    # Last: appending takes the feed-head lock, which is held until commit.
    changes.publish(session, person_events, now=received_at)
    return batch


def _kept_id(external_id: str | None) -> str | None:
    """An adapter's id for a rejected record, if the column takes it (the payload has it anyway)."""
    if not external_id or len(external_id) > MAX_EXTERNAL_ID:
        return None
    return external_id if safe_text(external_id) == external_id else None


def _storable_errors(errors: Iterable[FieldError]) -> list[dict[str, Any]]:
    # An adapter's message may quote what it could not read, NUL and lone surrogates included.
    return [{key: safe_text(str(value)) for key, value in error.items()} for error in errors]


def _quarantine(
    session: Session,
    source: str,
    adapter: Adapter[Any],
    rejected: list[tuple[int, RawRecord, list[FieldError], str | None]],
    received_at: datetime,
    import_id: uuid.UUID | None,
) -> None:
    """Keep each rejected record raw; the same payload already waiting is counted, not copied.

    A payload holding values no JSON column takes is kept whole as escaped JSON text instead.
    """
    texts = {
        index: as_json_text(raw.data)
        for index, raw, _errors, _id in rejected
        if first_unstorable(raw.data) is not None
    }
    hashes = {
        index: hashlib.sha256(texts[index].encode()).hexdigest()
        if index in texts
        else payload_hash(raw.data)
        for index, raw, _errors, _id in rejected
    }
    waiting = source_records_repo.quarantined_by_hash(session, source, set(hashes.values()))
    for index, raw, errors, external_id in rejected:
        digest = hashes[index]
        row = waiting.get(digest)
        if row is not None:
            row.occurrences += 1
            row.last_received_at = received_at
            row.errors = _storable_errors(errors)
            row.adapter_version = adapter.version
            continue
        row = RejectedRecord(
            source=source,
            external_id=external_id,
            adapter=adapter.name,
            adapter_version=adapter.version,
            position=safe_text((raw.position or "")[:64]) or None,
            payload=None if index in texts else raw.data,
            payload_text=texts.get(index),
            payload_hash=digest,
            errors=_storable_errors(errors),
            status="quarantined",
            occurrences=1,
            received_at=received_at,
            last_received_at=received_at,
            import_id=import_id,
        )
        source_records_repo.add_rejected(session, row)
        waiting[digest] = row


def translate_storable(
    adapter: Adapter[Any], raw: Any, *, source: str, received_at: datetime, strict: bool = False
) -> tuple[CaseRecord, dict[str, Any], list[data_quality.DataQualityWarning]]:
    """`translate`, the record as it is stored and its data-quality warnings; a value no column
    takes, or a record that cannot identify anyone, rejects the record."""
    _reject_unstorable(first_unstorable(raw), external_id=None)
    record, warnings = translate_leniently(
        adapter, raw, source=source, received_at=received_at, strict=strict
    )
    canonical = record.model_dump(mode="json")
    _reject_unstorable(first_unstorable(canonical), external_id=record.provenance.external_id)
    return record, canonical, warnings


def translate_leniently(
    adapter: Adapter[Any], raw: Any, *, source: str, received_at: datetime, strict: bool
) -> tuple[CaseRecord, list[data_quality.DataQualityWarning]]:
    """`translate`, keeping a record whose only faults are identity fields (dropped and warned
    about) unless the source is strict; below the minimum to identify anyone it is rejected."""
    errors: list[FieldError] = []
    try:
        record, warnings = translate(adapter, raw, source=source, received_at=received_at), []
    except RecordRejected as rejected:
        kept = None if strict else data_quality.keep_with_warnings(rejected.document)
        if kept is None:
            raise
        errors = rejected.errors
        record, warnings = _stamped(kept[0], source, received_at), kept[1]
    warnings += data_quality.missing_field_warnings(record, warnings)
    external_id = record.provenance.external_id
    if strict and warnings:
        raise RecordRejected(
            errors or data_quality.as_field_errors(warnings), external_id=external_id
        )
    if not data_quality.identifiable(record):
        raise RecordRejected(
            [*errors, data_quality.unidentifiable_error()], external_id=external_id
        )
    return record, warnings


def _reject_unstorable(found: Unstorable | None, *, external_id: str | None) -> None:
    if found is not None:
        raise RecordRejected(
            [FieldError(path=found.path, message=found.message, type=Unstorable.TYPE)],
            external_id=external_id,
        )


def translate(adapter: Adapter[Any], raw: Any, *, source: str, received_at: datetime) -> CaseRecord:
    """The adapter's translation, checked against the source it arrived for and stamped."""
    return _stamped(adapter.translate(raw), source, received_at)


def _stamped(record: CaseRecord, source: str, received_at: datetime) -> CaseRecord:
    """The record checked against the source it arrived for, with that source and receipt time."""
    declared = record.provenance.source
    if declared is not None and declared != source:
        raise RecordRejected(
            [
                FieldError(
                    path="provenance.source",
                    message="does not match the source in the URL",
                    type="source_mismatch",
                )
            ],
            external_id=record.provenance.external_id,
        )
    provenance = record.provenance.model_copy(update={"source": source, "received_at": received_at})
    return record.model_copy(update={"provenance": provenance})


def _person_for_new_record(
    session: Session,
    record: CaseRecord,
    persons_by_crn: dict[str, Person],
    touched: dict[uuid.UUID, _Touched],
    now: datetime,
) -> Person:
    """Link on an exact CRN; otherwise a new person. (Probabilistic matching is separate.)"""
    crn = record.person.identifiers.crn
    person = persons_by_crn.get(crn) if crn else None
    if person is None:
        person = Person(
            id=uuid.uuid4(), record={}, provenance={}, version=0, created_at=now, updated_at=now
        )
        persons_repo.add(session, person)
        touched[person.id] = _Touched(person=person, is_new=True)
        if crn:
            persons_by_crn[crn] = person
    else:
        if person.id not in touched:
            locked = persons_repo.get_many_for_update(session, [person.id])
            person = locked.get(person.id, person)
            touched[person.id] = _Touched(person=person, is_new=False)
    return touched[person.id].person


def _resolve_new_record(
    session: Session,
    resolver: BatchResolver,
    record_id: uuid.UUID,
    view: MatchView,
    touched: dict[uuid.UUID, _Touched],
    now: datetime,
) -> tuple[Person, Resolution]:
    """The person a new record belongs to, merging the persons it ties together; and why."""
    resolution = resolver.resolve(view)
    if resolution.person_id is None:
        person = Person(
            id=uuid.uuid4(), record={}, provenance={}, version=0, created_at=now, updated_at=now
        )
        persons_repo.add(session, person)
        touched[person.id] = _Touched(person=person, is_new=True)
    else:
        person = resolver.persons[resolution.person_id]
        if person.id not in touched:
            touched[person.id] = _Touched(person=person, is_new=False)
        if resolution.merge:
            merge_persons(
                session,
                survivor=person,
                losers=[resolver.persons[loser] for loser in resolution.merge],
                touched=touched,
                now=now,
            )
            resolver.merged(resolution.merge, person.id)
    resolver.added(record_id, view, person=person, resolution=resolution)
    return person, resolution


def _rematch_updated(
    session: Session,
    resolver: BatchResolver,
    stored: SourceRecord,
    view: MatchView,
    touched: dict[uuid.UUID, _Touched],
    now: datetime,
) -> bool:
    """A changed record is matched again: persons it now ties are merged into its own (True)."""
    resolution = (
        None
        if stored.pinned
        else resolver.resolve_update(stored.id, view, person_id=stored.person_id)
    )
    if resolution is not None and resolution.person_id is not None:
        survivor = resolver.persons[resolution.person_id]
        merge_persons(
            session,
            survivor=survivor,
            losers=[resolver.persons[loser] for loser in resolution.merge],
            touched=touched,
            now=now,
        )
        resolver.merged(resolution.merge, survivor.id)
        resolver.decided(stored.id, resolution, survivor.id)
    # The merge moved the record (the session keeps its person_id in step).
    resolver.rekey(stored.id, view, person_id=stored.person_id)
    return resolution is not None and resolution.person_id is not None


def _reevaluate(
    session: Session,
    matcher: Matcher,
    person_ids: set[uuid.UUID],
    changed: set[uuid.UUID],
    results: list[RecordOutcome],
    now: datetime,
) -> list[dict[str, Any]]:
    """Cluster the records of persons an update changed again, and split (or merge) them as the
    model now says; their change rows. The push's results follow records that moved."""
    # Imported here: re-resolution builds on this module (merges, golden records).
    from gateway.services.reresolve import reevaluate
    from gateway.services.review import PersonWork

    work = PersonWork(session=session, policy=matcher.policy, now=now, touched={}, events=[])
    applied = reevaluate(
        work,
        sorted(person_ids),
        model=matcher.model,
        max_key_records=matcher.max_key_records,
        method="reevaluated",
        movers=changed,
    )
    if applied.records_moved:
        moved = [r for r in results if r.person_id in person_ids and r.source_record_id]
        now_under = source_records_repo.person_ids_of(
            session, [r.source_record_id for r in moved if r.source_record_id is not None]
        )
        for result in moved:
            if result.source_record_id is not None:
                result.person_id = now_under.get(result.source_record_id, result.person_id)
    return work.events


def merge_persons(
    session: Session,
    *,
    survivor: Person,
    losers: Sequence[Person],
    touched: dict[uuid.UUID, _Touched],
    now: datetime,
) -> None:
    """Move every record and case of the losers to the survivor; the losers redirect to it."""
    # Rows still pending go out first, so the moves below reach them too.
    session.flush()
    matching_repo.move_person_records(
        session, from_person_ids=[loser.id for loser in losers], to_person_id=survivor.id
    )
    entry = touched.setdefault(survivor.id, _Touched(person=survivor, is_new=False))
    for loser in losers:
        redirect_merged(session, loser=loser, survivor=survivor, now=now)
        gone = touched.pop(loser.id, None)
        if gone is None or not gone.is_new:
            entry.merged_ids.append(loser.id)
        if gone is not None:
            entry.records.update(gone.records)
            entry.case_events.extend(gone.case_events)
            entry.merged_ids.extend(gone.merged_ids)
        if gone is None or not gone.is_new:
            loser.version += 1
        touched[loser.id] = _Touched(person=loser, is_new=False, merged_into=survivor.id)


def redirect_merged(session: Session, *, loser: Person, survivor: Person, now: datetime) -> None:
    """The loser now redirects to the survivor, and what belonged to it goes along: the
    identifiers the central system assigned (the survivor's own win) and the changes still
    owed to subscribers, which join the survivor's queue ahead of the merge."""
    if loser.assigned_identifiers:
        survivor.assigned_identifiers = {
            **loser.assigned_identifiers,
            **(survivor.assigned_identifiers or {}),
        }
    loser.merged_into_id = survivor.id
    loser.merged_at = now
    loser.updated_at = now
    subscriptions_repo.rehome_undelivered(
        session, from_person_ids=[loser.id], to_person_id=survivor.id
    )


def _apply_version(
    session: Session,
    stored: SourceRecord,
    item: _Accepted,
    adapter: Adapter[Any],
    received_at: datetime,
) -> None:
    stored.version += 1
    stored.content_hash = item.digest
    stored.payload = item.raw
    stored.canonical = item.canonical
    stored.adapter = adapter.name
    stored.adapter_version = adapter.version
    stored.source_version = item.record.provenance.source_version
    stored.source_updated_at = item.record.provenance.source_updated_at
    stored.received_at = received_at
    stored.warnings = [dict(warning) for warning in item.warnings]
    stored.warning_count = len(item.warnings)
    source_records_repo.add_version(
        session,
        SourceRecordVersion(
            id=uuid.uuid4(),
            source_record_id=stored.id,
            version=stored.version,
            content_hash=item.digest,
            payload=item.raw,
            received_at=received_at,
        ),
    )


def _upsert_case(
    session: Session,
    stored: SourceRecord,
    record: CaseRecord,
    existing_cases: dict[uuid.UUID, Case],
    now: datetime,
) -> dict[str, Any] | None:
    """Store the record's case; returns the change to emit, or None when nothing changed."""
    if record.case is None:
        return None
    document = record.case.model_dump(mode="json")
    case = existing_cases.get(stored.id)
    if case is None:
        case = Case(
            id=uuid.uuid4(),
            person_id=stored.person_id,
            source_record_id=stored.id,
            source=stored.source,
            record=document,
            version=1,
            created_at=now,
            updated_at=now,
        )
        persons_repo.add_case(session, case)
        existing_cases[stored.id] = case
        change_type = "case.created"
    elif case.record != document:
        case.record = document
        case.version += 1
        case.updated_at = now
        change_type = "case.updated"
    else:
        return None
    return change_row(
        change_type,
        now,
        person_id=case.person_id,
        case_id=case.id,
        stored=stored,
        snapshot={
            "case_id": str(case.id),
            "person_id": str(case.person_id),
            "source": stored.source,
            "external_id": stored.external_id,
            "version": case.version,
            "case": document,
        },
    )


def _refresh_golden_records(
    session: Session,
    touched: dict[uuid.UUID, _Touched],
    now: datetime,
    policy: SurvivorshipPolicy,
    *,
    source: str,
) -> list[dict[str, Any]]:
    """Rebuild each touched person's golden record; returns the batch's change rows in order."""
    # A new person's records are all in this batch; an existing one's are in the database too.
    stored = source_records_repo.list_for_persons(
        session,
        (
            person_id
            for person_id, entry in touched.items()
            if (not entry.is_new or entry.merged_ids) and entry.merged_into is None
        ),
    )
    events: list[dict[str, Any]] = []
    for person_id, entry in touched.items():
        if entry.merged_into is not None:
            continue
        linked = {record.id: record for record in stored.get(person_id, [])} | entry.records
        person = entry.person
        changed = refresh_golden(person, linked.values(), policy)
        # Cases of persons merged into this one in the batch were written under their old id.
        for event in entry.case_events:
            event["person_id"] = person.id
            event["snapshot"]["person_id"] = str(person.id)
        if entry.merged_ids:
            person.version += 1
            person.updated_at = now
            events.append(
                change_row(
                    "person.merged",
                    now,
                    person_id=person.id,
                    source=source,
                    snapshot={
                        **person_snapshot(person),
                        "merged_person_ids": [str(loser) for loser in entry.merged_ids],
                    },
                )
            )
            events.extend(entry.case_events)
            continue
        if entry.is_new or changed:
            person.version += 1
            person.updated_at = now
            events.append(
                change_row(
                    "person.created" if entry.is_new else "person.updated",
                    now,
                    person_id=person.id,
                    source=source,
                    snapshot=person_snapshot(person),
                )
            )
        events.extend(entry.case_events)
    return events


def refresh_golden(
    person: Person, records: Iterable[SourceRecord], policy: SurvivorshipPolicy
) -> bool:
    """Set the person's golden record from its source records; whether it changed."""
    golden = build_golden(
        (
            LinkedRecord(
                source=record.source,
                external_id=record.external_id,
                received_at=record.received_at,
                person=record.canonical["person"],
            )
            for record in records
        ),
        policy,
    )
    # Identifiers the central system assigned outrank whatever the sources say.
    for kind, assigned in (person.assigned_identifiers or {}).items():
        golden.person["identifiers"][kind] = assigned["value"]
        golden.provenance[f"identifiers.{kind}"] = {
            "source": ASSIGNED_SOURCE,
            "external_id": assigned["by"],
            "received_at": assigned["assigned_at"],
        }
    # A re-send that changes nothing of the person (only when it was received) is no change.
    if golden.person == person.record:
        return False
    person.record = golden.person
    person.provenance = golden.provenance
    identifiers = golden.person["identifiers"]
    person.crn = identifiers["crn"]
    person.pnc = identifiers["pnc"]
    person.cro = identifiers["cro"]
    person.noms = identifiers["noms"]
    person.nino = identifiers["nino"]
    return True


#: The provenance `source` of an identifier the central system assigned.
ASSIGNED_SOURCE = "central"


def person_snapshot(person: Person) -> dict[str, Any]:
    return {
        "person_id": str(person.id),
        "version": person.version,
        "person": person.record,
        "provenance": person.provenance,
    }


def change_row(
    change_type: str,
    now: datetime,
    *,
    person_id: uuid.UUID,
    snapshot: dict[str, Any],
    case_id: uuid.UUID | None = None,
    stored: SourceRecord | None = None,
    source: str | None = None,
    origin_client_id: uuid.UUID | None = None,
    origin_subscription_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A change-log row; `source` is the source whose record caused it, if one did."""
    return {
        "type": change_type,
        "occurred_at": now,
        "person_id": person_id,
        "case_id": case_id,
        "source": stored.source if stored else source,
        "source_record_id": stored.id if stored else None,
        "schema_version": SCHEMA_VERSION,
        "snapshot": snapshot,
        "origin_client_id": origin_client_id,
        "origin_subscription_id": origin_subscription_id,
    }


def _audit(
    session: Session,
    batch: BatchResult,
    touched: dict[uuid.UUID, _Touched],
    principal: Principal | None,
    now: datetime,
) -> None:
    collected = [person_id for person_id, entry in touched.items() if entry.is_new]
    altered = [person_id for person_id, entry in touched.items() if not entry.is_new]
    counts = batch.counts()
    for action, person_ids in (
        (audit.AuditAction.COLLECT, collected),
        (audit.AuditAction.ALTER, altered),
    ):
        if person_ids:
            audit.record(
                session,
                principal=principal,
                action=action,
                resource="source-records",
                person_ids=person_ids,
                now=now,
                detail={"source": batch.source, **counts},
            )
