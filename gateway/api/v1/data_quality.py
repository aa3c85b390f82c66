"""GET /v1/sources/{source}/data-quality: which identity fields a source sends invalid or empty
(operators)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.api.deps import DatabaseDep, SettingsDep, require
from gateway.api.v1.shapes import (
    DataQualityWarningOut,
    ExternalIdAfter,
    PageLimit,
    SourcePath,
    page_size,
)
from gateway.models import utcnow
from gateway.services import data_quality
from gateway.services.clients import Principal, Role

router = APIRouter(tags=["data quality"])


class WarningCountOut(BaseModel):
    path: str = Field(description="Dotted path of the identity field.")
    rule: str = Field(description="missing, invalid or not_uk_postcode.")
    records: int = Field(description="Current records of the source with this warning.")


class WarnedRecordOut(BaseModel):
    source_record_id: uuid.UUID
    external_id: str
    person_id: uuid.UUID = Field(description="The person the record is linked to.")
    warnings: list[DataQualityWarningOut]


class SourceDataQualityOut(BaseModel):
    source: str
    records: int = Field(description="Current records of the source.")
    warned_records: int = Field(description="Of those, records with at least one warning.")
    counts: list[WarningCountOut] = Field(description="Warnings by field path and rule.")
    items: list[WarnedRecordOut] = Field(description="Warned records, by external id.")
    next_after: str | None = Field(description="Pass as `after` for the next page.")


@router.get(
    "/v1/sources/{source}/data-quality",
    response_model=SourceDataQualityOut,
    summary="Data-quality warnings of one source",
    description=(
        "Identity fields the source sent invalid or empty (an impossible date of birth, no "
        "surname, an identifier whose check character is wrong, a postal code from abroad): "
        "each record was kept with the field treated as missing. Counts by field path and "
        "rule, and a page of the warned records with each raw value as sent."
    ),
)
def source_data_quality(
    source: SourcePath,
    db: DatabaseDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(require(Role.OPERATOR))],
    after: ExternalIdAfter = None,
    limit: PageLimit = None,
) -> SourceDataQualityOut:
    size = page_size(limit, settings.limits)
    report = db.write(
        lambda session: data_quality.source_report(
            session, source=source, after=after, limit=size, principal=principal, now=utcnow()
        )
    )
    return SourceDataQualityOut(
        source=report.source,
        records=report.records,
        warned_records=report.warned_records,
        counts=[
            WarningCountOut(path=count.path, rule=count.rule, records=count.records)
            for count in report.counts
        ],
        items=[
            WarnedRecordOut(
                source_record_id=item.source_record_id,
                external_id=item.external_id,
                person_id=item.person_id,
                warnings=[DataQualityWarningOut(**warning) for warning in item.warnings],
            )
            for item in report.items
        ],
        next_after=report.next_after,
    )
