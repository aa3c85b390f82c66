"""source records: data-quality warnings for identity fields kept as missing

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "warnings",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("warning_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(
            "ix_source_records_source_warned", ["source", "warning_count", "external_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_index("ix_source_records_source_warned")
        batch_op.drop_column("warning_count")
        batch_op.drop_column("warnings")
