"""idempotency: owner instance, lease and committed effects of pending records

Revision ID: idempotency_0001
Revises: 0001_core
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portside.server.store.base import UTCDateTime

revision: str = "idempotency_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("idempotency",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("effects", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_column("effects")
        batch.drop_column("lease_expires_at")
        batch.drop_column("owner")
