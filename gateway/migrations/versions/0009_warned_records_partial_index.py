"""source records: a partial index for the warned records of a source, in external-id order

The (source, warning_count, external_id) index of 0008 cannot give the warned records in
external-id order (warning_count is a range there), so a data-quality page read through most of a
source's records. An index of (source, external_id) holding only warned records serves the page,
its order and the counts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WARNED = sa.text("warning_count > 0")


def upgrade() -> None:
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_index("ix_source_records_source_warned")
        batch_op.create_index(
            "ix_source_records_warned",
            ["source", "external_id"],
            sqlite_where=_WARNED,
            postgresql_where=_WARNED,
        )


def downgrade() -> None:
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_index("ix_source_records_warned")
        batch_op.create_index(
            "ix_source_records_source_warned", ["source", "warning_count", "external_id"]
        )
