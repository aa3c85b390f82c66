"""sync: webhook subscriptions, the delivery outbox, change origins, assigned identifiers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin_client_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("origin_subscription_id", sa.Uuid(), nullable=True))
    with op.batch_alter_table("feed_head", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purged_through", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_index("ix_changes_type_seq", "changes", ["type", "seq"])
    op.create_index("ix_changes_source_seq", "changes", ["source", "seq"])
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_identifiers", JSON_DOCUMENT, nullable=True))

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("event_types", JSON_DOCUMENT, nullable=False),
        sa.Column("sources", JSON_DOCUMENT, nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=300), nullable=True),
        sa.Column("disabled_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("last_success_at", UTC_DATETIME, nullable=True),
        sa.Column("last_failure_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name="fk_subscriptions_client_id_api_clients"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=False),
        sa.Column("leased_until", UTC_DATETIME, nullable=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("delivered_at", UTC_DATETIME, nullable=True),
        sa.Column("dead_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name="fk_deliveries_subscription_id_subscriptions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index(
        "ix_deliveries_person_order", "deliveries", ["subscription_id", "person_id", "seq"]
    )
    op.create_index(
        "uq_deliveries_subscription_id_seq", "deliveries", ["subscription_id", "seq"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_deliveries_subscription_id_seq", table_name="deliveries")
    op.drop_index("ix_deliveries_person_order", table_name="deliveries")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("subscriptions")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_column("assigned_identifiers")
    op.drop_index("ix_changes_source_seq", table_name="changes")
    op.drop_index("ix_changes_type_seq", table_name="changes")
    with op.batch_alter_table("feed_head", schema=None) as batch_op:
        batch_op.drop_column("purged_through")
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_column("origin_subscription_id")
        batch_op.drop_column("origin_client_id")
