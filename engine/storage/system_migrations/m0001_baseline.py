"""0001 — the engine"s own tables as metacrm 0.1.0 created them (the baseline).

A frozen copy: never edit it. Databases of 0.1.0 made these tables with `create_all` and
have no version table; for them this step creates whatever they lack (checkfirst) and is
recorded as applied. A fresh database starts here. Types are plain SQL types, not the
engine"s codecs, so a later change of a codec cannot change this step.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.engine import Connection

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}
UUID = sa.Uuid(as_uuid=False)
DATETIME = sa.DateTime
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def tables(metadata: sa.MetaData) -> list[sa.Table]:
    """The 0.1.0 system tables, declared into `metadata`."""
    return [
        sa.Table(
            "metacrm_approval", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("object", sa.Text, nullable=False),
            sa.Column("record_id", UUID, nullable=False),
            sa.Column("process", sa.Text, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("step", sa.Integer, nullable=False),
            sa.Column("approvers", sa.Text, nullable=False),
            sa.Column("submitted_by", UUID),
            sa.Column("submitted_at", DATETIME, nullable=False),
            sa.Column("finished_at", DATETIME),
            sa.Index("ix_metacrm_approval_record", "object", "record_id", "status"),
        ),
        sa.Table(
            "metacrm_approval_history", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("approval_id", sa.BigInteger, nullable=False),
            sa.Column("step", sa.Text),
            sa.Column("user_id", UUID),
            sa.Column("decision", sa.Text, nullable=False),
            sa.Column("comment", sa.Text),
            sa.Column("at", DATETIME, nullable=False),
            sa.Index("ix_metacrm_approval_history_approval", "approval_id"),
        ),
        sa.Table(
            "metacrm_archived_field", metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("object", sa.Text, nullable=False),
            sa.Column("field_id", sa.Text, nullable=False),
            sa.Column("field_name", sa.Text, nullable=False),
            sa.Column("column_name", sa.Text, nullable=False),
            sa.Column("definition", sa.Text, nullable=False),
            sa.Column("archived_at", DATETIME, nullable=False),
            sa.Column("revision", sa.Integer, nullable=False),
            sa.Column("restored_at", DATETIME),
        ),
        sa.Table(
            "metacrm_assignment_cursor", metadata,
            sa.Column("key", sa.Text, primary_key=True),
            sa.Column("position", sa.Integer, nullable=False),
        ),
        sa.Table(
            "metacrm_audit", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("at", DATETIME, nullable=False),
            sa.Column("user_id", UUID),
            sa.Column("event", sa.Text, nullable=False),
            sa.Column("object", sa.Text),
            sa.Column("record_id", UUID),
            sa.Column("detail", sa.Text),
            sa.Column("address", sa.Text),
            sa.Index("ix_metacrm_audit_at", "at"),
            sa.Index("ix_metacrm_audit_event", "event", "at"),
        ),
        sa.Table(
            "metacrm_automation_log", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("object", sa.Text, nullable=False),
            sa.Column("rule", sa.Text, nullable=False),
            sa.Column("record_id", UUID),
            sa.Column("trigger", sa.Text, nullable=False),
            sa.Column("result", sa.Text, nullable=False),
            sa.Column("duration_ms", sa.Float, nullable=False),
            sa.Column("error", sa.Text),
            sa.Column("at", DATETIME, nullable=False),
            sa.Index("ix_metacrm_automation_log_rule", "object", "rule", "at"),
        ),
        sa.Table(
            "metacrm_field_history", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("object", sa.Text, nullable=False),
            sa.Column("record_id", UUID, nullable=False),
            sa.Column("field_id", sa.Text, nullable=False),
            sa.Column("field", sa.Text, nullable=False),
            sa.Column("old_value", sa.Text),
            sa.Column("new_value", sa.Text),
            sa.Column("changed_by", UUID),
            sa.Column("changed_at", DATETIME, nullable=False),
            sa.Index("ix_metacrm_field_history_record", "object", "record_id", "changed_at"),
        ),
        sa.Table(
            "metacrm_group", metadata,
            sa.Column("id", UUID, primary_key=True),
            sa.Column("name", sa.Text, nullable=False, unique=True),
        ),
        sa.Table(
            "metacrm_login_failure", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("email", sa.Text, nullable=False),
            sa.Column("address", sa.Text),
            sa.Column("at", DATETIME, nullable=False),
            sa.Index("ix_metacrm_login_failure_email", "email", "at"),
        ),
        sa.Table(
            "metacrm_notification", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("user_id", UUID, nullable=False),
            sa.Column("message", sa.Text, nullable=False),
            sa.Column("object", sa.Text),
            sa.Column("record_id", UUID),
            sa.Column("outbox_id", sa.BigInteger),
            sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("read_at", DATETIME),
            sa.UniqueConstraint("outbox_id", "user_id", name="uq_metacrm_notification_delivery"),
            sa.Index("ix_metacrm_notification_user", "user_id", "read_at"),
        ),
        sa.Table(
            "metacrm_outbox", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("kind", sa.Text, nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
            sa.Column("max_attempts", sa.Integer, nullable=False, server_default="5"),
            sa.Column("next_attempt_at", DATETIME, nullable=False),
            sa.Column("locked_by", sa.Text),
            sa.Column("locked_until", DATETIME),
            sa.Column("last_error", sa.Text),
            sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("done_at", DATETIME),
            sa.Column("rule", sa.Text),
            sa.Column("record_id", UUID),
            sa.Index("ix_metacrm_outbox_due", "status", "next_attempt_at"),
        ),
        sa.Table(
            "metacrm_pool_claim", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("object", sa.Text, nullable=False),
            sa.Column("record_id", UUID, nullable=False),
            sa.Column("pool", sa.Text, nullable=False),
            sa.Column("user_id", UUID, nullable=False),
            sa.Column("claimed_at", DATETIME, nullable=False),
            sa.Column("returned_at", DATETIME),
            sa.Index("ix_metacrm_pool_claim_user", "object", "pool", "user_id", "returned_at"),
        ),
        sa.Table(
            "metacrm_pool_entry", metadata,
            sa.Column("object", sa.Text, primary_key=True),
            sa.Column("record_id", UUID, primary_key=True),
            sa.Column("pool", sa.Text, nullable=False),
            sa.Column("since", DATETIME, nullable=False),
            sa.Index("ix_metacrm_pool_entry_pool", "object", "pool", "since"),
        ),
        sa.Table(
            "metacrm_revision", metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("author", sa.Text),
            sa.Column("summary", sa.Text, nullable=False),
            sa.Column("documents", sa.Text, nullable=False),
        ),
        sa.Table(
            "metacrm_schedule", metadata,
            sa.Column("object", sa.Text, primary_key=True),
            sa.Column("rule", sa.Text, primary_key=True),
            sa.Column("next_run_at", DATETIME, nullable=False),
            sa.Column("last_run_at", DATETIME),
        ),
        sa.Table(
            "metacrm_sequence", metadata,
            sa.Column("object", sa.Text, primary_key=True),
            sa.Column("field", sa.Text, primary_key=True),
            sa.Column("period", sa.Text, primary_key=True),
            sa.Column("value", sa.BigInteger, nullable=False),
        ),
        sa.Table(
            "metacrm_sla_clock", metadata,
            sa.Column("object", sa.Text, primary_key=True),
            sa.Column("record_id", UUID, primary_key=True),
            sa.Column("target", sa.Text, primary_key=True),
            sa.Column("policy", sa.Text, nullable=False),
            sa.Column("started_at", DATETIME, nullable=False),
            sa.Column("paused_at", DATETIME),
            sa.Column("due_at", DATETIME),
            sa.Column("status", sa.Text, nullable=False),
        ),
        sa.Table(
            "metacrm_timer", metadata,
            sa.Column("object", sa.Text, primary_key=True),
            sa.Column("rule", sa.Text, primary_key=True),
            sa.Column("record_id", UUID, primary_key=True),
            sa.Column("due_at", DATETIME, nullable=False),
            sa.Column("locked_until", DATETIME),
            sa.Index("ix_metacrm_timer_due", "due_at"),
        ),
        sa.Table(
            "metacrm_user", metadata,
            sa.Column("id", UUID, primary_key=True),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("email", sa.Text, nullable=False, unique=True),
            sa.Column("language", sa.Text, nullable=False, server_default="en"),
            sa.Column("manager", UUID, sa.ForeignKey("metacrm_user.id", ondelete="SET NULL")),
            sa.Column("active", sa.Boolean(create_constraint=False), nullable=False, server_default=sa.true()),
            sa.Column("password_hash", sa.Text),
            sa.Column("created_at", DATETIME, nullable=False),
        ),
        sa.Table(
            "metacrm_api_token", metadata,
            sa.Column("id", UUID, primary_key=True),
            sa.Column("user_id", UUID, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE"), nullable=False),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("digest", sa.Text, nullable=False, unique=True),
            sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("expires_at", DATETIME),
            sa.Column("revoked_at", DATETIME),
            sa.Column("last_used_at", DATETIME),
        ),
        sa.Table(
            "metacrm_group_member", metadata,
            sa.Column("group_id", UUID, sa.ForeignKey("metacrm_group.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("user_id", UUID, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE"), primary_key=True),
        ),
        sa.Table(
            "metacrm_session", metadata,
            sa.Column("digest", sa.Text, primary_key=True),
            sa.Column("user_id", UUID, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE"), nullable=False),
            sa.Column("csrf", sa.Text, nullable=False),
            sa.Column("created_at", DATETIME, nullable=False),
            sa.Column("expires_at", DATETIME, nullable=False),
        ),
        sa.Table(
            "metacrm_share", metadata,
            sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
            sa.Column("object", sa.Text, nullable=False),
            sa.Column("record_id", UUID, nullable=False),
            sa.Column("user_id", UUID, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE")),
            sa.Column("group_id", UUID, sa.ForeignKey("metacrm_group.id", ondelete="CASCADE")),
            sa.Column("access", sa.Text, nullable=False),
            sa.Column("granted_by", UUID),
            sa.Column("granted_at", DATETIME, nullable=False),
            sa.Index("ix_metacrm_share_record", "object", "record_id"),
            sa.Index("ix_metacrm_share_user", "object", "user_id"),
        ),
        sa.Table(
            "metacrm_user_role", metadata,
            sa.Column("user_id", UUID, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("role", sa.Text, primary_key=True),
        ),
    ]


def upgrade(op: Operations, conn: Connection) -> None:
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    tables(metadata)
    metadata.create_all(conn, checkfirst=True)
