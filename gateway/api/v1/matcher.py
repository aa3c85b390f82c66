"""Admin: the stored match models, which one is active, and re-runs of the matcher."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway.api.deps import DatabaseDep, require
from gateway.matching import MatchModel
from gateway.models import MatcherRun, utcnow
from gateway.services import match_models, reruns
from gateway.services.clients import Principal, Role

router = APIRouter(tags=["matcher"])
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
Version = Annotated[str, Path(min_length=1, max_length=64)]


class BandsOut(BaseModel):
    link: float = Field(description="Match weight in bits from which a pair links.")
    possible: float = Field(description="Match weight in bits from which a pair goes to review.")


class MatchModelOut(BaseModel):
    version: str
    description: str
    prior: float = Field(description="Probability that two records drawn at random match.")
    bands: BandsOut
    trained: dict[str, Any] | None = Field(
        description="How a trained model was estimated (records, pairs, EM iterations)."
    )
    active: bool = Field(description="Ingest and re-runs score with this model.")
    created_at: datetime
    activated_at: datetime | None


class StoredModelOut(BaseModel):
    model: MatchModelOut
    created: bool = Field(description="False when this exact model was stored already.")


class MatcherRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: str = Field(description="queued, running, succeeded or failed")
    model_version: str | None = Field(description="The model the run scores with.")
    records_total: int
    records_done: int = Field(description="Records the run has applied so far (progress).")
    groups_changed: int = Field(description="Groups of records whose persons changed.")
    records_moved: int
    persons_merged: int
    persons_split: int
    reviews_closed: int = Field(description="Pending review items the new clusters answered.")
    reviews_opened: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    failure: str | None


def _model_out(row: Any) -> MatchModelOut:
    return MatchModelOut.model_validate(match_models.model_summary(row))


@router.get("/v1/matcher/models", response_model=list[MatchModelOut], summary="Stored match models")
def list_models(db: DatabaseDep, _principal: AdminDep) -> list[MatchModelOut]:
    return [_model_out(row) for row in db.read(match_models.list_models)]


@router.post(
    "/v1/matcher/models",
    response_model=StoredModelOut,
    status_code=status.HTTP_201_CREATED,
    summary="Store a match model (a file `crc-gateway matcher train` wrote)",
    description=(
        "Stores the model under its version; it scores nothing until activated. The same model "
        "sent again answers 200 with `created: false`; another model under a stored version "
        "is refused (409)."
    ),
    responses={200: {"description": "Already stored"}},
)
def add_model(
    response: Response,
    db: DatabaseDep,
    principal: AdminDep,
    model: Annotated[MatchModel, Body(description="The model file's JSON.")],
) -> StoredModelOut:
    def work(session: Session) -> StoredModelOut:
        row, created = match_models.add_model(session, model, principal=principal, now=utcnow())
        return StoredModelOut(model=_model_out(row), created=created)

    stored = db.write(work)
    if not stored.created:
        response.status_code = status.HTTP_200_OK
    return stored


@router.get(
    "/v1/matcher/models/{version}",
    summary="A stored match model, whole",
    response_model=dict[str, Any],
)
def get_model(version: Version, db: DatabaseDep, _principal: AdminDep) -> dict[str, Any]:
    document: dict[str, Any] = db.read(lambda s: match_models.get_model(s, version).document)
    return document


@router.post(
    "/v1/matcher/models/{version}/activate",
    response_model=MatchModelOut,
    summary="Make a stored model the one ingest scores with",
    description=(
        "Every server, worker and poller scores with it from its next batch. Records already "
        "stored keep their persons until a re-run (`POST /v1/matcher/reruns`)."
    ),
)
def activate_model(version: Version, db: DatabaseDep, principal: AdminDep) -> MatchModelOut:
    return db.write(
        lambda s: _model_out(match_models.activate(s, version, principal=principal, now=utcnow()))
    )


@router.post(
    "/v1/matcher/reruns",
    response_model=MatcherRunOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Re-run the matcher over every stored record, in the background",
    description=(
        "Clusters every record again with the active model and applies the result: merges "
        "and splits as `person.merged` / `person.split` changes, survivors keeping their ids, "
        "review items the new evidence settles closed. Records a person pinned and pairs a "
        "person said differ are never overridden. One run at a time (409 while one is queued "
        "or running); follow its progress at `Location`."
    ),
)
def request_rerun(response: Response, db: DatabaseDep, principal: AdminDep) -> MatcherRun:
    run = db.write(lambda s: reruns.request_run(s, principal=principal, now=utcnow()))
    response.headers["Location"] = f"/v1/matcher/reruns/{run.id}"
    return run


@router.get(
    "/v1/matcher/reruns", response_model=list[MatcherRunOut], summary="Recent matcher re-runs"
)
def list_reruns(db: DatabaseDep, _principal: AdminDep) -> list[MatcherRun]:
    return db.read(reruns.list_runs)


@router.get(
    "/v1/matcher/reruns/{run_id}",
    response_model=MatcherRunOut,
    summary="Progress and outcome of a matcher re-run",
)
def get_rerun(run_id: uuid.UUID, db: DatabaseDep, _principal: AdminDep) -> MatcherRun:
    return db.read(lambda s: reruns.get_run(s, run_id))
