# ruff: noqa: E501
"""Initial schema: citizens, channels, enrollments, cards, status lists, audit, guards.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 02:15:17.640813
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ecard.store.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attempt_counters",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("updated_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_attempt_counters")),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("enrollment_id", sa.String(length=32), nullable=True),
        sa.Column("card_id", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_card_id"), ["card_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_enrollment_id"), ["enrollment_id"], unique=False
        )

    op.create_table(
        "channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=64), nullable=False),
        sa.Column("created_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("client_id", name=op.f("uq_channels_client_id")),
        sa.UniqueConstraint("name", name=op.f("uq_channels_name")),
    )
    op.create_table(
        "citizens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("photo", sa.LargeBinary(), nullable=False),
        sa.Column("template", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_citizens")),
        sa.UniqueConstraint("id_number", name=op.f("uq_citizens_id_number")),
    )
    op.create_table(
        "status_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("next_idx", sa.Integer(), nullable=False),
        sa.CheckConstraint("next_idx <= size", name=op.f("ck_status_lists_capacity")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_lists")),
    )
    op.create_table(
        "used_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("used_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_used_tokens")),
    )
    with op.batch_alter_table("used_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_used_tokens_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "enrollments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("agreement_version", sa.String(length=16), nullable=True),
        sa.Column("consented_at", ecard.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("nonce_hash", sa.String(length=64), nullable=True),
        sa.Column("nonce_expires_at", ecard.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("challenge_blinks", sa.Integer(), nullable=True),
        sa.Column("challenge_cues", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("verified_at", ecard.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", ecard.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.CheckConstraint(
            "state IN ('authorized', 'consented', 'challenged', 'verified', 'issued', 'expired', 'failed', 'locked')",
            name=op.f("ck_enrollments_state"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_enrollments_attempts")),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_enrollments_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name=op.f("fk_enrollments_citizen_id_citizens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_enrollments_token_hash")),
    )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollments_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_enrollments_citizen_id"), ["citizen_id"], unique=False)

    op.create_table(
        "cards",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("card_no", sa.String(length=20), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_list", sa.Integer(), nullable=False),
        sa.Column("status_idx", sa.Integer(), nullable=False),
        sa.Column("pin_hash", sa.String(length=200), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("issued_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("changed_at", ecard.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'revoked')", name=op.f("ck_cards_status")
        ),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name=op.f("fk_cards_citizen_id_citizens")
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"], ["enrollments.id"], name=op.f("fk_cards_enrollment_id_enrollments")
        ),
        sa.ForeignKeyConstraint(
            ["status_list"], ["status_lists.id"], name=op.f("fk_cards_status_list_status_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cards")),
        sa.UniqueConstraint("card_no", name=op.f("uq_cards_card_no")),
        sa.UniqueConstraint("enrollment_id", name=op.f("uq_cards_enrollment_id")),
        sa.UniqueConstraint("jti", name=op.f("uq_cards_jti")),
        sa.UniqueConstraint("status_list", "status_idx", name="uq_cards_status_slot"),
    )
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cards_citizen_id"), ["citizen_id"], unique=False)
        batch_op.create_index(
            "uq_cards_one_live_per_citizen",
            ["citizen_id"],
            unique=True,
            sqlite_where=sa.text("status <> 'revoked'"),
            postgresql_where=sa.text("status <> 'revoked'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_cards_one_live_per_citizen",
            sqlite_where=sa.text("status <> 'revoked'"),
            postgresql_where=sa.text("status <> 'revoked'"),
        )
        batch_op.drop_index(batch_op.f("ix_cards_citizen_id"))

    op.drop_table("cards")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollments_citizen_id"))
        batch_op.drop_index(batch_op.f("ix_enrollments_channel_id"))

    op.drop_table("enrollments")
    with op.batch_alter_table("used_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_used_tokens_expires_at"))

    op.drop_table("used_tokens")
    op.drop_table("status_lists")
    op.drop_table("citizens")
    op.drop_table("channels")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_enrollment_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_card_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))

    op.drop_table("audit_events")
    op.drop_table("attempt_counters")
