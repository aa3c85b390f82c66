"""Webhook subscriptions (admin) and their dead letters (operators)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway.api.deps import DatabaseDep, SettingsDep, require
from gateway.api.v1.shapes import InputModel, PageLimit, RowCursor, RowIdInt, page_size
from gateway.models import Subscription, utcnow
from gateway.services import status as status_service
from gateway.services import webhooks
from gateway.services.changes import EVENT_TYPES
from gateway.services.clients import Principal, Role

# An absolute http(s) URL with a host; which hosts are allowed is the deployment's choice.
URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s]*)?$"
router = APIRouter(tags=["subscriptions"])
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
OperatorDep = Annotated[Principal, Depends(require(Role.OPERATOR))]

_TYPES = ", ".join(EVENT_TYPES)


class SubscriptionIn(InputModel):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(
        max_length=2048,
        pattern=URL_PATTERN,
        description="Where to POST events; its host must be in the allow-list.",
    )
    event_types: list[str] = Field(
        default_factory=list, max_length=len(EVENT_TYPES), description=f"Empty: all ({_TYPES})."
    )
    sources: list[str] = Field(
        default_factory=list, max_length=100, description="Only changes these sources caused."
    )
    secret: str | None = Field(
        None,
        max_length=200,
        description="A Standard Webhooks secret (`whsec_` + base64); generated when omitted.",
    )
    client_id: uuid.UUID | None = Field(
        None,
        description="The API client the receiving system calls in with: changes it causes "
        "(its write-backs) are not sent back to it.",
    )


class SubscriptionPatch(InputModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, max_length=2048, pattern=URL_PATTERN)
    event_types: list[str] | None = Field(None, max_length=len(EVENT_TYPES))
    sources: list[str] | None = Field(None, max_length=100)
    active: bool | None = Field(None, description="false pauses delivery; true resumes it.")


class SubscriptionStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    subscription_id: uuid.UUID
    name: str
    active: bool
    disabled_reason: str | None
    backlog: int = Field(description="Changes owed and not yet delivered (dead letters apart).")
    due: int = Field(description="Of those, how many may be tried now.")
    dead_letters: int
    oldest_undelivered_at: datetime | None
    lag_seconds: float = Field(description="Age of the oldest undelivered change; 0 if none.")
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    name: str
    url: str
    event_types: list[str]
    sources: list[str]
    client_id: uuid.UUID | None
    active: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime
    status: SubscriptionStatusOut

    @classmethod
    def of(
        cls, subscription: Subscription, lag: status_service.SubscriptionStatus
    ) -> SubscriptionOut:
        return cls(
            id=subscription.id,
            name=subscription.name,
            url=subscription.url,
            event_types=subscription.event_types,
            sources=subscription.sources,
            client_id=subscription.client_id,
            active=subscription.active,
            disabled_reason=subscription.disabled_reason,
            disabled_at=subscription.disabled_at,
            created_at=subscription.created_at,
            status=SubscriptionStatusOut.model_validate(lag),
        )


class CreatedSubscriptionOut(SubscriptionOut):
    secret: str = Field(description="The signing secret. Shown only now.")


class RotateSecretIn(InputModel):
    secret: str | None = Field(
        None,
        max_length=200,
        description="The new secret (`whsec_` + base64); generated if omitted.",
    )
    keep_previous_hours: float = Field(
        24,
        ge=0,
        le=168,
        description="How long deliveries also carry a signature with the old secret.",
    )


class DeadLetterOut(BaseModel):
    delivery_id: int
    change_id: str = Field(
        description="The change's id in the feed (its `webhook-id` is evt_<id>)."
    )
    type: str
    person_id: uuid.UUID
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    dead_at: datetime | None


class DeadLetterPageOut(BaseModel):
    dead_letters: list[DeadLetterOut]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null at the end."
    )


class ReplayIn(InputModel):
    delivery_ids: list[RowIdInt] | None = Field(
        None, max_length=10_000, description="Only these dead letters; all when omitted."
    )


class ReplayOut(BaseModel):
    replayed: int


def _out(session: Session, subscription: Subscription) -> SubscriptionOut:
    lag = status_service.subscription_status(session, subscription, now=utcnow())
    return SubscriptionOut.of(subscription, lag)


@router.post(
    "/v1/subscriptions",
    response_model=CreatedSubscriptionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a receiver to signed webhooks",
    description="From now on every matching change is delivered to `url`, signed as Standard "
    "Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), in order per person, "
    "retried on the published schedule and then dead-lettered.",
)
def create_subscription(
    body: SubscriptionIn, db: DatabaseDep, settings: SettingsDep, principal: AdminDep
) -> CreatedSubscriptionOut:
    def work(session: Session) -> CreatedSubscriptionOut:
        created = webhooks.create_subscription(
            session,
            name=body.name,
            url=body.url,
            event_types=body.event_types,
            sources=body.sources,
            secret=body.secret,
            client_id=body.client_id,
            settings=settings.webhooks,
            principal=principal,
            now=utcnow(),
        )
        session.flush()
        out = _out(session, created.subscription)
        return CreatedSubscriptionOut(**out.model_dump(), secret=created.secret)

    return db.write(work)


@router.get("/v1/subscriptions", response_model=list[SubscriptionOut], summary="List subscriptions")
def list_subscriptions(db: DatabaseDep, _principal: OperatorDep) -> list[SubscriptionOut]:
    def work(session: Session) -> list[SubscriptionOut]:
        lags = {
            lag.subscription_id: lag
            for lag in status_service.subscription_statuses(session, now=utcnow())
        }
        return [
            SubscriptionOut.of(subscription, lags[subscription.id])
            for subscription in webhooks.list_subscriptions(session)
        ]

    return db.read(work)


@router.get(
    "/v1/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Read a subscription and its lag",
)
def get_subscription(
    subscription_id: uuid.UUID, db: DatabaseDep, _principal: OperatorDep
) -> SubscriptionOut:
    return db.read(
        lambda session: _out(session, webhooks.get_subscription(session, subscription_id))
    )


@router.patch(
    "/v1/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Change, pause or resume a subscription",
)
def update_subscription(
    subscription_id: uuid.UUID,
    body: SubscriptionPatch,
    db: DatabaseDep,
    settings: SettingsDep,
    principal: AdminDep,
) -> SubscriptionOut:
    def work(session: Session) -> SubscriptionOut:
        subscription = webhooks.update_subscription(
            session,
            subscription_id,
            settings=settings.webhooks,
            principal=principal,
            now=utcnow(),
            url=body.url,
            event_types=body.event_types,
            sources=body.sources,
            name=body.name,
            active=body.active,
        )
        session.flush()
        return _out(session, subscription)

    return db.write(work)


@router.post(
    "/v1/subscriptions/{subscription_id}/secret",
    response_model=CreatedSubscriptionOut,
    summary="Rotate a subscription's signing secret",
    description="Returns the new secret (shown only now). For `keep_previous_hours` every "
    "delivery carries two signatures, one per secret, so the receiver can switch over without "
    "refusing anything.",
)
def rotate_secret(
    subscription_id: uuid.UUID,
    db: DatabaseDep,
    principal: AdminDep,
    body: RotateSecretIn | None = None,
) -> CreatedSubscriptionOut:
    wanted = body or RotateSecretIn()

    def work(session: Session) -> CreatedSubscriptionOut:
        rotated = webhooks.rotate_secret(
            session,
            subscription_id,
            secret=wanted.secret,
            grace=timedelta(hours=wanted.keep_previous_hours),
            principal=principal,
            now=utcnow(),
        )
        session.flush()
        out = _out(session, rotated.subscription)
        return CreatedSubscriptionOut(**out.model_dump(), secret=rotated.secret)

    return db.write(work)


@router.delete(
    "/v1/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a subscription",
    description="Stops delivery for good and drops what was still queued for it; the change "
    "feed still holds every change. To stop for a while, PATCH `active: false` instead.",
)
def delete_subscription(subscription_id: uuid.UUID, db: DatabaseDep, principal: AdminDep) -> None:
    db.write(
        lambda session: webhooks.delete_subscription(
            session, subscription_id, principal=principal, now=utcnow()
        )
    )


@router.get(
    "/v1/subscriptions/{subscription_id}/dead-letters",
    response_model=DeadLetterPageOut,
    summary="List a subscription's dead letters",
)
def list_dead_letters(
    subscription_id: uuid.UUID,
    db: DatabaseDep,
    settings: SettingsDep,
    _principal: OperatorDep,
    after: RowCursor = 0,
    limit: PageLimit = None,
) -> DeadLetterPageOut:
    size = page_size(limit, settings.limits)
    rows = db.read(
        lambda session: webhooks.dead_letters(
            session, subscription_id, after_id=after, limit=size + 1
        )
    )
    more = len(rows) > size
    rows = rows[:size]
    return DeadLetterPageOut(
        dead_letters=[
            DeadLetterOut(
                delivery_id=row.id,
                change_id=str(row.seq),
                type=change_type,
                person_id=row.person_id,
                attempts=row.attempts,
                last_status=row.last_status,
                last_error=row.last_error,
                created_at=row.created_at,
                dead_at=row.dead_at,
            )
            for row, change_type in rows
        ],
        next_after=rows[-1][0].id if more else None,
    )


@router.post(
    "/v1/subscriptions/{subscription_id}/dead-letters/replay",
    response_model=ReplayOut,
    summary="Send dead letters again",
    description="Puts the subscription's dead letters (or the listed ones) back in the queue "
    "with a fresh retry schedule; each keeps its `webhook-id`, and a person's later changes "
    "held behind it follow in order.",
)
def replay_dead_letters(
    subscription_id: uuid.UUID,
    db: DatabaseDep,
    principal: OperatorDep,
    body: ReplayIn | None = None,
) -> ReplayOut:
    replayed = db.write(
        lambda session: webhooks.replay_dead_letters(
            session,
            subscription_id,
            delivery_ids=body.delivery_ids if body else None,
            principal=principal,
            now=utcnow(),
        )
    )
    return ReplayOut(replayed=replayed)
