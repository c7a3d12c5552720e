"""Time-based PIN lockout, hospital scans bound to confirmations, recovery enrollments.

- ``attempt_counters``: ``window_start``, ``window_failures``, ``next_try_at`` (the wait and the
  daily cap of ecard.tokens.pin.LockoutPolicy, reserved atomically);
- ``desk_scans``: a hospital's scan of a card, which a settlement confirmation must name;
- ``enrollments``: ``purpose`` (``issue`` or ``recover``) and the recovered ``card_id``.

Plain ``ADD COLUMN`` on every backend (nullable or with a server default): no table rebuild, so
the tables that reference ``enrollments`` are untouched.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ecard.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = ecard.store.models.UTCDateTime(timezone=True)
    op.add_column("attempt_counters", sa.Column("window_start", utc, nullable=True))
    op.add_column(
        "attempt_counters",
        sa.Column("window_failures", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("attempt_counters", sa.Column("next_try_at", utc, nullable=True))
    op.add_column(
        "enrollments",
        sa.Column("purpose", sa.String(length=16), server_default="issue", nullable=False),
    )
    op.add_column("enrollments", sa.Column("card_id", sa.String(length=32), nullable=True))
    op.create_table(
        "desk_scans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("hospital", sa.String(length=64), nullable=False),
        sa.Column("card_id", sa.String(length=32), nullable=False),
        sa.Column("scanned_at", utc, nullable=False),
        sa.Column("expires_at", utc, nullable=False),
        sa.Column("confirmed_at", utc, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_scans")),
        sa.UniqueConstraint("jti", name=op.f("uq_desk_scans_jti")),
    )
    op.create_index(op.f("ix_desk_scans_card_id"), "desk_scans", ["card_id"], unique=False)
    op.create_index(op.f("ix_desk_scans_expires_at"), "desk_scans", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_desk_scans_expires_at"), table_name="desk_scans")
    op.drop_index(op.f("ix_desk_scans_card_id"), table_name="desk_scans")
    op.drop_table("desk_scans")
    with op.batch_alter_table("attempt_counters") as batch_op:
        batch_op.drop_column("next_try_at")
        batch_op.drop_column("window_failures")
        batch_op.drop_column("window_start")
    op.drop_column("enrollments", "card_id")
    op.drop_column("enrollments", "purpose")
