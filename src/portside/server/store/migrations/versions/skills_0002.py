"""skills: one active release per skill; a canary carries its traffic split

Bay keeps one active release per skill; Portside kept one per stage. The active canary release now
carries the split itself (``canary_share`` and ``fallback_release_id``, the stable release that serves
the other runs). Existing data: per skill, the newest active release stays active; when it is a canary
and a stable release was active beside it, that stable release becomes its fallback.

Revision ID: skills_0002
Revises: skills_0001
Create Date: 2027-01-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "skills_0002"
down_revision: str | Sequence[str] | None = "skills_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_releases = sa.table(
    "skill_releases",
    sa.column("id", sa.String),
    sa.column("skill_key", sa.String),
    sa.column("version", sa.Integer),
    sa.column("stage", sa.String),
    sa.column("is_active", sa.Boolean),
    sa.column("fallback_release_id", sa.String),
)


def upgrade() -> None:
    op.add_column("skill_releases", sa.Column("canary_share", sa.Float(), nullable=True))
    op.add_column("skill_releases", sa.Column("fallback_release_id", sa.String(40), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_releases.c.id, _releases.c.skill_key, _releases.c.stage)
        .where(_releases.c.is_active.is_(True))
        .order_by(_releases.c.skill_key, _releases.c.version.desc())
    ).all()
    by_skill: dict[str, list[tuple[str, str]]] = {}
    for rid, key, stage in rows:
        by_skill.setdefault(key, []).append((rid, stage))
    for active in by_skill.values():
        if len(active) < 2:
            continue
        (keep_id, keep_stage), rest = active[0], active[1:]
        stable = next((rid for rid, stage in rest if stage == "stable"), None)
        if keep_stage == "canary" and stable is not None:
            bind.execute(sa.update(_releases).where(_releases.c.id == keep_id).values(fallback_release_id=stable))
        bind.execute(sa.update(_releases).where(_releases.c.id.in_([rid for rid, _ in rest])).values(is_active=False))
    op.drop_index("uq_skill_releases_active_stage", table_name="skill_releases")
    op.create_index(
        "uq_skill_releases_active_skill",
        "skill_releases",
        ["skill_key"],
        unique=True,
        sqlite_where=sa.text("is_active"),
        postgresql_where=sa.text("is_active"),
    )


def downgrade() -> None:
    op.drop_index("uq_skill_releases_active_skill", table_name="skill_releases")
    op.create_index(
        "uq_skill_releases_active_stage",
        "skill_releases",
        ["skill_key", "stage"],
        unique=True,
        sqlite_where=sa.text("is_active"),
        postgresql_where=sa.text("is_active"),
    )
    with op.batch_alter_table("skill_releases") as batch:
        batch.drop_column("fallback_release_id")
        batch.drop_column("canary_share")
