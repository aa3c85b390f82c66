"""quarantine, imports and polled source state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:49:47.122066
"""

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=63), nullable=False),
        sa.Column("adapter", sa.String(length=63), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("records_done", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("unchanged", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("failure", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.create_index(
            "ix_imports_source_file_sha256", ["source", "file_sha256"], unique=False
        )

    op.create_table(
        "source_state",
        sa.Column("source", sa.String(length=63), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sa.String(length=500), nullable=True),
        sa.Column("last_poll_at", UTC_DATETIME, nullable=True),
        sa.Column("last_success_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_error_at", UTC_DATETIME, nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("next_poll_at", UTC_DATETIME, nullable=True),
        sa.Column("records_polled", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_state")),
    )

    # New quarantine columns arrive nullable, are filled for rows already quarantined, and only
    # then become NOT NULL.
    with op.batch_alter_table("rejected_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("payload_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("occurrences", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_received_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("import_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("resolved_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("resolved_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("resolution_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("replayed_as", sa.Uuid(), nullable=True))

    connection = op.get_bind()
    rejected = sa.table(
        "rejected_records",
        sa.column("id", sa.BigInteger()),
        sa.column("payload", sa.JSON()),
        sa.column("payload_hash", sa.String()),
    )
    for row_id, payload in connection.execute(sa.select(rejected.c.id, rejected.c.payload)):
        encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        connection.execute(
            rejected.update()
            .where(rejected.c.id == row_id)
            .values(payload_hash=hashlib.sha256(encoded).hexdigest())
        )
    op.execute("UPDATE rejected_records SET occurrences = 1, last_received_at = received_at")

    with op.batch_alter_table("rejected_records", schema=None) as batch_op:
        batch_op.alter_column("payload_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("occurrences", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("last_received_at", existing_type=UTC_DATETIME, nullable=False)
        batch_op.create_index(
            "ix_rejected_records_source_payload_hash", ["source", "payload_hash"], unique=False
        )
        batch_op.create_index("ix_rejected_records_status_id", ["status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rejected_records", schema=None) as batch_op:
        batch_op.drop_index("ix_rejected_records_status_id")
        batch_op.drop_index("ix_rejected_records_source_payload_hash")
        batch_op.drop_column("replayed_as")
        batch_op.drop_column("resolution_note")
        batch_op.drop_column("resolved_by")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("import_id")
        batch_op.drop_column("last_received_at")
        batch_op.drop_column("occurrences")
        batch_op.drop_column("payload_hash")
        batch_op.drop_column("position")

    op.drop_table("source_state")
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_index("ix_imports_source_file_sha256")

    op.drop_table("imports")
