"""Webhook subscriptions: who receives which events, Standard Webhooks signing, retry policy."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.orm import Session
from tenacity import RetryCallState, Retrying, stop_after_attempt
from tenacity.wait import wait_base

from gateway.errors import InvalidRequest, NotFound
from gateway.models import Delivery, Subscription
from gateway.repositories import clients as clients_repo
from gateway.repositories import subscriptions as subscriptions_repo
from gateway.services import audit
from gateway.services.changes import check_event_types
from gateway.services.clients import Principal, validate_source_name
from gateway.settings import WebhookSettings

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SIGNATURE_VERSION = "v1"


def generate_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_...` secret."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            "secret must be `whsec_` followed by base64",
            errors=[{"path": "secret", "message": "not base64", "type": "value_error"}],
        ) from None
    if not 24 <= len(key) <= 64:
        raise InvalidRequest(
            "secret must hold 24 to 64 random bytes",
            errors=[{"path": "secret", "message": "wrong length", "type": "value_error"}],
        )
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` and base64 HMAC-SHA256 of `id.timestamp.body`."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Whether a delivery carries a valid signature (what a receiver does; used by our tests)."""
    expected = sign(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    offered = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


def message_id(seq: int) -> str:
    """The `webhook-id` of a change: the same on every retry and replay, so receivers dedupe."""
    return f"evt_{seq}"


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def listed_exactly(host: str, allowed: Sequence[str]) -> bool:
    """Whether the allow-list names this host itself (not through a wildcard)."""
    host = host.lower().rstrip(".")
    return any(pattern.lower().rstrip(".") == host for pattern in allowed)


def check_url(url: str, settings: WebhookSettings) -> str:
    """A subscription URL the gateway may call: allowed scheme and host, no credentials in it."""

    def refuse(message: str) -> InvalidRequest:
        return InvalidRequest(
            f"url {message}", errors=[{"path": "url", "message": message, "type": "value_error"}]
        )

    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise refuse("is not a valid URL") from None
    allowed_schemes = {"https"} if settings.require_https else {"https", "http"}
    if parts.scheme not in allowed_schemes:
        raise refuse(f"must use {' or '.join(sorted(allowed_schemes))}")
    if not parts.hostname:
        raise refuse("has no host")
    if parts.username or parts.password:
        raise refuse("must not carry credentials (the signature authenticates us)")
    if parts.fragment:
        raise refuse("must not have a fragment")
    if not host_allowed(parts.hostname, settings.allowed_hosts):
        raise refuse(
            "names a host that is not in the webhook allow-list (GATEWAY_WEBHOOKS__ALLOWED_HOSTS)"
        )
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        address = None
    # An address literal must be listed exactly; a wildcard never admits one.
    if address is not None and parts.hostname not in settings.allowed_hosts:
        raise refuse("names an address that is not in the webhook allow-list")
    return url


class _ScheduleWait(wait_base):
    """Tenacity wait: the schedule's step for the attempt, spread by jitter either way."""

    def __init__(self, schedule: Sequence[float], jitter: float, rng: random.Random) -> None:
        self.schedule = list(schedule)
        self.jitter = jitter
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        step = self.schedule[min(retry_state.attempt_number, len(self.schedule)) - 1]
        return step * (1 + self.rng.uniform(-self.jitter, self.jitter))


class RetryPolicy:
    """When to try a failed delivery again, and when to give up: tenacity's wait and stop.

    Deliveries outlive processes (retries are hours apart), so the policy is asked for the next
    wait and the answer is stored on the delivery; no worker sleeps through a schedule.
    """

    def __init__(self, settings: WebhookSettings, *, rng: random.Random | None = None) -> None:
        self.schedule = list(settings.retry_schedule_seconds)
        self.wait = _ScheduleWait(self.schedule, settings.jitter, rng or random.SystemRandom())
        self.stop = stop_after_attempt(len(self.schedule) + 1)
        self._retrying = Retrying(wait=self.wait, stop=self.stop)

    def after_failure(self, attempts: int) -> float | None:
        """Seconds until the next try after `attempts` failed ones; None to dead-letter now."""
        state = RetryCallState(self._retrying, fn=None, args=(), kwargs={})
        state.attempt_number = attempts
        if self.stop(state):
            return None
        return float(self.wait(state))

    @property
    def total_seconds(self) -> float:
        return sum(self.schedule)


@dataclass(frozen=True)
class CreatedSubscription:
    subscription: Subscription
    secret: str


def _check_filters(event_types: Sequence[str], sources: Sequence[str]) -> None:
    check_event_types(event_types, path="event_types")
    for source in sources:
        validate_source_name(source)


def create_subscription(
    session: Session,
    *,
    name: str,
    url: str,
    event_types: Sequence[str],
    sources: Sequence[str],
    secret: str | None,
    client_id: uuid.UUID | None,
    settings: WebhookSettings,
    principal: Principal | None,
    now: datetime,
) -> CreatedSubscription:
    """A new, active subscription; it is owed every matching change committed from now on."""
    check_url(url, settings)
    _check_filters(event_types, sources)
    if subscriptions_repo.count(session) >= settings.max_subscriptions:
        raise InvalidRequest(f"at most {settings.max_subscriptions} subscriptions")
    if client_id is not None and clients_repo.get(session, client_id) is None:
        raise InvalidRequest(
            "client_id names no API client",
            errors=[{"path": "client_id", "message": "unknown client", "type": "value_error"}],
        )
    secret = secret or generate_secret()
    secret_key(secret)
    subscription = Subscription(
        id=uuid.uuid4(),
        name=name,
        url=url,
        event_types=sorted(set(event_types)),
        sources=sorted(set(sources)),
        secret=secret,
        client_id=client_id,
        active=True,
        created_at=now,
        updated_at=now,
    )
    subscriptions_repo.add(session, subscription)
    _audit(session, principal, now, subscription.id, {"action": "created"})
    return CreatedSubscription(subscription=subscription, secret=secret)


def get_subscription(session: Session, subscription_id: uuid.UUID) -> Subscription:
    subscription = subscriptions_repo.get(session, subscription_id)
    if subscription is None:
        raise NotFound("no subscription with that id")
    return subscription


def update_subscription(
    session: Session,
    subscription_id: uuid.UUID,
    *,
    settings: WebhookSettings,
    principal: Principal | None,
    now: datetime,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    name: str | None = None,
    active: bool | None = None,
) -> Subscription:
    """Change a subscription's URL, filters, name or active flag (re-enabling resumes it)."""
    subscription = subscriptions_repo.lock(session, subscription_id)
    if subscription is None:
        raise NotFound("no subscription with that id")
    if url is not None:
        subscription.url = check_url(url, settings)
    event_types = subscription.event_types if event_types is None else event_types
    sources = subscription.sources if sources is None else sources
    _check_filters(event_types, sources)
    subscription.event_types = sorted(set(event_types))
    subscription.sources = sorted(set(sources))
    if name is not None:
        subscription.name = name
    if active is not None and active != subscription.active:
        subscription.active = active
        subscription.disabled_reason = None if active else "disabled by an administrator"
        subscription.disabled_at = None if active else now
    subscription.updated_at = now
    _audit(session, principal, now, subscription.id, {"action": "updated"})
    return subscription


def signing_secrets(subscription: Subscription, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and a rotated-out one
    until its grace period ends (Standard Webhooks sends one signature per secret)."""
    secrets_ = [subscription.secret]
    until = subscription.previous_secret_until
    if subscription.previous_secret and until is not None and now < until:
        secrets_.append(subscription.previous_secret)
    return secrets_


def rotate_secret(
    session: Session,
    subscription_id: uuid.UUID,
    *,
    secret: str | None,
    grace: timedelta,
    principal: Principal | None,
    now: datetime,
) -> CreatedSubscription:
    """A new signing secret; the old one keeps signing (beside it) for `grace`."""
    subscription = subscriptions_repo.lock(session, subscription_id)
    if subscription is None:
        raise NotFound("no subscription with that id")
    secret = secret or generate_secret()
    secret_key(secret)
    if grace > timedelta(0):
        subscription.previous_secret = subscription.secret
        subscription.previous_secret_until = now + grace
    else:
        subscription.previous_secret = None
        subscription.previous_secret_until = None
    subscription.secret = secret
    subscription.updated_at = now
    _audit(
        session,
        principal,
        now,
        subscription.id,
        {"action": "secret rotated", "grace_hours": grace.total_seconds() / 3600},
    )
    return CreatedSubscription(subscription=subscription, secret=secret)


def delete_subscription(
    session: Session, subscription_id: uuid.UUID, *, principal: Principal | None, now: datetime
) -> None:
    """Remove a subscription and what is still queued for it (the feed keeps every change)."""
    subscription = get_subscription(session, subscription_id)
    _audit(session, principal, now, subscription.id, {"action": "deleted"})
    subscriptions_repo.remove(session, subscription_id)


def replay_dead_letters(
    session: Session,
    subscription_id: uuid.UUID,
    *,
    delivery_ids: Sequence[int] | None,
    principal: Principal | None,
    now: datetime,
) -> int:
    """Queue a subscription's dead letters (all, or the listed ones) again from the first try."""
    get_subscription(session, subscription_id)
    replayed = subscriptions_repo.replay_dead(
        session, subscription_id, now=now, delivery_ids=delivery_ids
    )
    _audit(session, principal, now, subscription_id, {"replayed": replayed})
    return replayed


def dead_letters(
    session: Session, subscription_id: uuid.UUID, *, after_id: int, limit: int
) -> Sequence[tuple[Delivery, str]]:
    get_subscription(session, subscription_id)
    return subscriptions_repo.dead_letters(session, subscription_id, after_id=after_id, limit=limit)


def _audit(
    session: Session,
    principal: Principal | None,
    now: datetime,
    subscription_id: uuid.UUID,
    detail: dict[str, object],
) -> None:
    audit.record(
        session,
        principal=principal,
        action=audit.AuditAction.ADMINISTER,
        resource="subscriptions",
        person_ids=(),
        now=now,
        detail={"subscription_id": str(subscription_id), **detail},
    )


def list_subscriptions(session: Session) -> Sequence[Subscription]:
    return subscriptions_repo.list_all(session)
