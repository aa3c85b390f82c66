"""SQLAlchemy tables, one module per aggregate; importing this package registers them all."""

from gateway.models.audit import AuditEntry, AuditLogIsAppendOnly
from gateway.models.base import Base, utcnow
from gateway.models.change import Change, FeedHead
from gateway.models.client import ApiClient
from gateway.models.idempotency import IdempotencyKey
from gateway.models.imports import Import
from gateway.models.matching import (
    MatchDecision,
    MatcherRun,
    MatchExclusion,
    MatchKey,
    MatchModelRow,
)
from gateway.models.person import Case, Person
from gateway.models.source_record import RejectedRecord, SourceRecord, SourceRecordVersion
from gateway.models.source_state import SourceState
from gateway.models.source_stats import SourceStats
from gateway.models.subscription import Delivery, DeliveryStatus, Subscription

__all__ = [
    "ApiClient",
    "AuditEntry",
    "AuditLogIsAppendOnly",
    "Base",
    "Case",
    "Change",
    "Delivery",
    "DeliveryStatus",
    "FeedHead",
    "IdempotencyKey",
    "Import",
    "MatchDecision",
    "MatchExclusion",
    "MatchKey",
    "MatchModelRow",
    "MatcherRun",
    "Person",
    "RejectedRecord",
    "SourceRecord",
    "SourceRecordVersion",
    "SourceState",
    "SourceStats",
    "Subscription",
    "utcnow",
]
