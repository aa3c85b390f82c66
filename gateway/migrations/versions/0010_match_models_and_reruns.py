"""match models an admin activates, and the matcher's re-runs with their progress

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ACTIVE = sa.text("active")


def upgrade() -> None:
    op.create_table(
        "match_models",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("document", JSON_DOCUMENT, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("activated_at", UTC_DATETIME, nullable=True),
        sa.Column("activated_by", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_match_models")),
    )
    op.create_index(
        "ux_match_models_active",
        "match_models",
        ["active"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_table(
        "matcher_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("slot", sa.String(length=8), nullable=True),
        sa.Column("claim", sa.Uuid(), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("records_total", sa.BigInteger(), nullable=False),
        sa.Column("records_done", sa.BigInteger(), nullable=False),
        sa.Column("groups_changed", sa.BigInteger(), nullable=False),
        sa.Column("records_moved", sa.BigInteger(), nullable=False),
        sa.Column("persons_merged", sa.BigInteger(), nullable=False),
        sa.Column("persons_split", sa.BigInteger(), nullable=False),
        sa.Column("reviews_closed", sa.BigInteger(), nullable=False),
        sa.Column("reviews_opened", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("heartbeat_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("failure", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matcher_runs")),
    )
    op.create_index("ix_matcher_runs_status", "matcher_runs", ["status"])
    op.create_index("ux_matcher_runs_slot", "matcher_runs", ["slot"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_matcher_runs_slot", table_name="matcher_runs")
    op.drop_index("ix_matcher_runs_status", table_name="matcher_runs")
    op.drop_table("matcher_runs")
    op.drop_index("ux_match_models_active", table_name="match_models")
    op.drop_table("match_models")
