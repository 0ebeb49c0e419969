"""The engine's automation tables: outbox, timers, schedules, notifications, execution log, comments
and follows of records.

A change here needs a step in engine/storage/system_migrations (existing databases)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from metacrm.engine.storage.columns import ID_TYPE, JSONText, UTCDateTime
from metacrm.engine.storage.tables import new_metadata

#: the automation tables; engine.system_schema lists them (TABLES, at the end)
METADATA = new_metadata()
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

outbox = sa.Table(
    "metacrm_outbox", METADATA,
    sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),            # email, webhook, notify, plugin
    sa.Column("payload", JSONText, nullable=False),
    sa.Column("status", sa.Text, nullable=False),          # pending, done, dead
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="5"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("locked_by", sa.Text),
    sa.Column("locked_until", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("done_at", UTCDateTime),
    sa.Column("rule", sa.Text),
    sa.Column("record_id", ID_TYPE),
    # random, so unique across installations; the Message-ID / X-Metacrm-Delivery of every attempt
    sa.Column("delivery_id", ID_TYPE, nullable=False, unique=True, default=lambda: str(uuid.uuid4())),
    sa.Index("ix_metacrm_outbox_due", "status", "next_attempt_at"),
)

timers = sa.Table(
    "metacrm_timer", METADATA,
    sa.Column("object", sa.Text, primary_key=True),
    sa.Column("rule", sa.Text, primary_key=True),
    sa.Column("record_id", ID_TYPE, primary_key=True),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("locked_until", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # failed firings so far
    sa.Column("last_error", sa.Text),
    sa.Index("ix_metacrm_timer_due", "due_at"),
)

schedules = sa.Table(
    "metacrm_schedule", METADATA,
    sa.Column("object", sa.Text, primary_key=True),
    sa.Column("rule", sa.Text, primary_key=True),
    sa.Column("next_run_at", UTCDateTime, nullable=False),
    sa.Column("last_run_at", UTCDateTime),
)

notifications = sa.Table(
    "metacrm_notification", METADATA,
    sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("user_id", ID_TYPE, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("object", sa.Text),
    sa.Column("record_id", ID_TYPE),
    sa.Column("outbox_id", sa.BigInteger),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("read_at", UTCDateTime),
    sa.UniqueConstraint("outbox_id", "user_id", name="uq_metacrm_notification_delivery"),
    sa.Index("ix_metacrm_notification_user", "user_id", "read_at"),
)

assignment_cursors = sa.Table(
    "metacrm_assignment_cursor", METADATA,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)

execution_log = sa.Table(
    "metacrm_automation_log", METADATA,
    sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("record_id", ID_TYPE),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=False),          # matched, skipped, failed
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_metacrm_automation_log_rule", "object", "rule", "at"),
)

approvals = sa.Table(
    "metacrm_approval", METADATA,
    sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("record_id", ID_TYPE, nullable=False),
    sa.Column("process", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),          # pending, approved, rejected, recalled
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("approvers", JSONText, nullable=False),      # user ids of the current step
    sa.Column("submitted_by", ID_TYPE),
    sa.Column("submitted_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Index("ix_metacrm_approval_record", "object", "record_id", "status"),
)

approval_history = sa.Table(
    "metacrm_approval_history", METADATA,
    sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("approval_id", sa.BigInteger, nullable=False),
    sa.Column("step", sa.Text),
    sa.Column("user_id", ID_TYPE),
    sa.Column("decision", sa.Text, nullable=False),        # submitted, approved, rejected, recalled
    sa.Column("comment", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_metacrm_approval_history_approval", "approval_id"),
)

sla_clocks = sa.Table(
    "metacrm_sla_clock", METADATA,
    sa.Column("object", sa.Text, primary_key=True),
    sa.Column("record_id", ID_TYPE, primary_key=True),
    sa.Column("target", sa.Text, primary_key=True),
    sa.Column("policy", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("paused_at", UTCDateTime),
    sa.Column("due_at", UTCDateTime),
    sa.Column("status", sa.Text, nullable=False),
)

pool_entries = sa.Table(
    "metacrm_pool_entry", METADATA,
    sa.Column("object", sa.Text, primary_key=True),
    sa.Column("record_id", ID_TYPE, primary_key=True),
    sa.Column("pool", sa.Text, nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
    sa.Index("ix_metacrm_pool_entry_pool", "object", "pool", "since"),
)

pool_claims = sa.Table(
    "metacrm_pool_claim", METADATA,
    sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("record_id", ID_TYPE, nullable=False),
    sa.Column("pool", sa.Text, nullable=False),
    sa.Column("user_id", ID_TYPE, nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("returned_at", UTCDateTime),
    sa.Index("ix_metacrm_pool_claim_user", "object", "pool", "user_id", "returned_at"),
)

comments = sa.Table(
    "metacrm_comment", METADATA,
    sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("record_id", ID_TYPE, nullable=False),
    sa.Column("user_id", ID_TYPE),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("mentions", JSONText, nullable=False),       # user ids mentioned in the body
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_metacrm_comment_record", "object", "record_id", "created_at"),
)

follows = sa.Table(
    "metacrm_follow", METADATA,
    sa.Column("object", sa.Text, primary_key=True),
    sa.Column("record_id", ID_TYPE, primary_key=True),
    sa.Column("user_id", ID_TYPE, primary_key=True),
    sa.Column("since", UTCDateTime, nullable=False),
)

TABLES: tuple[sa.Table, ...] = (outbox, timers, schedules, notifications, assignment_cursors, execution_log,
                                approvals, approval_history, sla_clocks, pool_entries, pool_claims, comments,
                                follows)
