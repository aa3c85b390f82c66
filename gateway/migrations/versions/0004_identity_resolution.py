"""identity resolution: blocking keys, match decisions, exclusions, merges, pinned links

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("merged_at", UTC_DATETIME, nullable=True))
        batch_op.create_foreign_key(
            "fk_persons_merged_into_id_persons", "persons", ["merged_into_id"], ["id"]
        )
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    op.create_table(
        "match_keys",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("source_record_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name="fk_match_keys_source_record_id_source_records",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_match_keys"),
    )
    op.create_index("ix_match_keys_key", "match_keys", ["key"])
    op.create_index("ix_match_keys_source_record_id", "match_keys", ["source_record_id"])

    op.create_table(
        "match_decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_record_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("band", sa.String(length=16), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_person_id", sa.Uuid(), nullable=True),
        sa.Column("match_weight", sa.Float(), nullable=True),
        sa.Column("explanation", JSON_DOCUMENT, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("reviewed_at", UTC_DATETIME, nullable=True),
        sa.Column("reviewed_by", sa.Uuid(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name="fk_match_decisions_source_record_id_source_records",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_match_decisions"),
    )
    op.create_index(
        "ix_match_decisions_status_created_at", "match_decisions", ["status", "created_at"]
    )
    op.create_index("ix_match_decisions_source_record_id", "match_decisions", ["source_record_id"])

    op.create_table(
        "match_exclusions",
        sa.Column("record_a", sa.Uuid(), nullable=False),
        sa.Column("record_b", sa.Uuid(), nullable=False),
        sa.Column("decision_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["record_a"], ["source_records.id"], name="fk_match_exclusions_record_a_source_records"
        ),
        sa.ForeignKeyConstraint(
            ["record_b"], ["source_records.id"], name="fk_match_exclusions_record_b_source_records"
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["match_decisions.id"],
            name="fk_match_exclusions_decision_id_match_decisions",
        ),
        sa.PrimaryKeyConstraint("record_a", "record_b", name="pk_match_exclusions"),
    )
    op.create_index("ix_match_exclusions_record_b", "match_exclusions", ["record_b"])


def downgrade() -> None:
    op.drop_index("ix_match_exclusions_record_b", table_name="match_exclusions")
    op.drop_table("match_exclusions")
    op.drop_index("ix_match_decisions_source_record_id", table_name="match_decisions")
    op.drop_index("ix_match_decisions_status_created_at", table_name="match_decisions")
    op.drop_table("match_decisions")
    op.drop_index("ix_match_keys_source_record_id", table_name="match_keys")
    op.drop_index("ix_match_keys_key", table_name="match_keys")
    op.drop_table("match_keys")
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_column("pinned")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_constraint("fk_persons_merged_into_id_persons", type_="foreignkey")
        batch_op.drop_column("merged_at")
        batch_op.drop_column("merged_into_id")
