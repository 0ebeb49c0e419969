"""0002 — a delivery id for every outbox entry; attempt counts and the last error on timers.

The delivery id (a random UUID) makes an email's Message-ID and a webhook's
X-Metacrm-Delivery unique across installations and the same on every retry. Entries
already queued get theirs here, in batches. Timers count failed attempts so that one
that keeps failing can become a dead letter instead of being retried forever.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from metacrm.engine.storage.system_migrations.m0001_baseline import NAMING_CONVENTION, UUID

BATCH = 1000


def upgrade(op: Operations, conn: Connection) -> None:
    op.add_column("metacrm_outbox", sa.Column("delivery_id", UUID))  # NOT NULL once every row has one
    _give_delivery_ids(conn)
    with op.batch_alter_table("metacrm_outbox", recreate="auto", naming_convention=NAMING_CONVENTION) as batch:
        batch.alter_column("delivery_id", existing_type=UUID, nullable=False)
        batch.create_unique_constraint("uq_metacrm_outbox_delivery_id", ["delivery_id"])
    op.add_column("metacrm_timer", sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("metacrm_timer", sa.Column("last_error", sa.Text))


def _give_delivery_ids(conn: Connection) -> None:
    outbox = sa.table("metacrm_outbox", sa.column("id", sa.BigInteger), sa.column("delivery_id", UUID))
    pending = sa.select(outbox.c.id).where(outbox.c.delivery_id.is_(None)).order_by(outbox.c.id).limit(BATCH)
    assign = (sa.update(outbox).where(outbox.c.id == sa.bindparam("row_id"))
              .values(delivery_id=sa.bindparam("new_id")))
    while ids := list(conn.execute(pending).scalars()):
        conn.execute(assign, [{"row_id": i, "new_id": str(uuid.uuid4())} for i in ids])
