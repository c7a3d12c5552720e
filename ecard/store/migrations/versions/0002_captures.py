# ruff: noqa: E501
"""Live capture protocol: the ``captures`` table and the enrollment state ``capturing``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ecard.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD_STATES = "state IN ('authorized', 'consented', 'challenged', 'verified', 'issued', 'expired', 'failed', 'locked')"
NEW_STATES = "state IN ('authorized', 'consented', 'capturing', 'challenged', 'verified', 'issued', 'expired', 'failed', 'locked')"


def _replace_state_check(old: str, new: str) -> None:
    """Swap the CHECK on ``enrollments.state``.

    PostgreSQL alters it in place. SQLite cannot alter a constraint, and rebuilding the table
    (batch mode) would drop a table that ``cards`` references, which fails with foreign keys
    on; so the table's stored definition is edited in place instead, the procedure SQLite
    documents for changes that leave the stored rows valid (sqlite.org/lang_altertable.html,
    section 7): every stored state is in both lists (``downgrade`` moves ``capturing`` rows
    back to ``consented`` first).
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_enrollments_state"), "enrollments", type_="check")
        op.create_check_constraint(op.f("ck_enrollments_state"), "enrollments", new)
        return
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'enrollments'"
    ).scalar_one()
    if f"CHECK ({old})" not in sql:
        raise RuntimeError("enrollments.state has an unexpected CHECK; migrate by hand.")
    version = int(bind.exec_driver_sql("PRAGMA schema_version").scalar_one())
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'enrollments'",
        (sql.replace(f"CHECK ({old})", f"CHECK ({new})"),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _replace_state_check(OLD_STATES, NEW_STATES)
    op.create_table(
        "captures",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("enrollment_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("first_ts", sa.Float(), nullable=True),
        sa.Column("first_arrival_ms", sa.Float(), nullable=True),
        sa.Column("first_newest_ts", sa.Float(), nullable=True),
        sa.Column("offset_ms", sa.Float(), nullable=True),
        sa.Column("newest_ts", sa.Float(), nullable=True),
        sa.Column("reveals", sa.Text(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.CheckConstraint("frames >= 0", name=op.f("ck_captures_frames")),
        sa.CheckConstraint("next_seq >= 0", name=op.f("ck_captures_next_seq")),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_captures_enrollment_id_enrollments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_captures")),
        sa.UniqueConstraint("enrollment_id", name=op.f("uq_captures_enrollment_id")),
    )
    with op.batch_alter_table("captures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_captures_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("captures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_captures_expires_at"))
    op.drop_table("captures")
    op.execute("UPDATE enrollments SET state = 'consented' WHERE state = 'capturing'")
    _replace_state_check(NEW_STATES, OLD_STATES)
