"""skills_0002: from one active release per stage to one per skill, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from portside.server.store import Database
from portside.server.store.registry import load_all_models
from portside.server.store.session import alembic_config

pytestmark = pytest.mark.timeout(120)
NOW = datetime(2027, 1, 1, tzinfo=timezone.utc)


def _upgrade_to(conn: Connection, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def _release(rid: str, key: str, version: int, stage: str, active: bool) -> dict[str, Any]:
    return {
        "id": rid,
        "skill_key": key,
        "candidate_id": f"cand_{rid}",
        "version": version,
        "stage": stage,
        "is_active": active,
        "release_mode": "manual",
        "promoted_at": NOW,
    }


async def test_two_active_stages_become_one_active_canary_with_a_fallback(db_url: str) -> None:
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            await conn.run_sync(_upgrade_to, "skills_0001")
            await conn.commit()
            insert = text(
                "INSERT INTO skill_releases (id, skill_key, candidate_id, version, stage, is_active, release_mode,"
                " promoted_at) VALUES (:id, :skill_key, :candidate_id, :version, :stage, :is_active,"
                " :release_mode, :promoted_at)"
            )
            for row in (
                _release("rel_s1", "split", 1, "stable", True),
                _release("rel_c2", "split", 2, "canary", True),
                _release("rel_c1", "flip", 1, "canary", True),
                _release("rel_s2", "flip", 2, "stable", True),
                _release("rel_x1", "alone", 1, "stable", False),
                _release("rel_x2", "alone", 2, "stable", True),
            ):
                await conn.execute(insert, row)
            await conn.commit()
        await db.migrate()
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT id, is_active, fallback_release_id FROM skill_releases ORDER BY id"))
            ).all()
            state = {r[0]: (bool(r[1]), r[2]) for r in rows}
            assert state == {
                "rel_c1": (False, None),
                "rel_c2": (True, "rel_s1"),  # the canary keeps serving its share, stable the rest
                "rel_s1": (False, None),
                "rel_s2": (True, None),  # a newer stable simply replaces the canary
                "rel_x1": (False, None),
                "rel_x2": (True, None),
            }
            with pytest.raises(IntegrityError):  # the database itself keeps one active release per skill
                await conn.execute(insert, _release("rel_c3", "flip", 3, "canary", True))
            await conn.rollback()

            def diffs(c: Connection) -> list[Any]:
                context = MigrationContext.configure(c, opts={"compare_type": False})
                return [d for d in compare_metadata(context, load_all_models()) if "skill_releases" in repr(d)]

            assert await conn.run_sync(diffs) == []
    finally:
        await db.dispose()
