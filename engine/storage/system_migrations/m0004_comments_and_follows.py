"""0004 — comments on records (with the users they mention) and who follows which record.

Two new tables, created with plain SQL types like the baseline (a frozen copy: never edit).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from metacrm.engine.storage.system_migrations.m0001_baseline import BIGINT_ID, DATETIME, UUID


def upgrade(op: Operations, conn: Connection) -> None:
    op.create_table(
        "metacrm_comment",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("object", sa.Text, nullable=False),
        sa.Column("record_id", UUID, nullable=False),
        sa.Column("user_id", UUID),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("mentions", sa.Text, nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
    )
    op.create_index("ix_metacrm_comment_record", "metacrm_comment", ["object", "record_id", "created_at"])
    op.create_table(
        "metacrm_follow",
        sa.Column("object", sa.Text, primary_key=True),
        sa.Column("record_id", UUID, primary_key=True),
        sa.Column("user_id", UUID, primary_key=True),
        sa.Column("since", DATETIME, nullable=False),
    )
