"""Alembic on a fresh PostgreSQL database: upgrade to head, no autogenerate diff, downgrade to base."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from migrations import alembic_config
from store.db import build_engine
from store.models import Base


def test_upgrade_head_matches_models_and_downgrades(fresh_database: Callable[[], str]) -> None:
    url = fresh_database()
    config = alembic_config(url)
    command.upgrade(config, "head")
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
            )
            assert diff == []
            tables = set(inspect(connection).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
        command.check(config)
        command.downgrade(config, "base")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()


def test_constraint_names_follow_the_naming_convention(database_url: str) -> None:
    engine = build_engine(database_url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            uniques = {u["name"] for u in inspector.get_unique_constraints("clips")}
            foreign = {f["name"] for f in inspector.get_foreign_keys("clips")}
            primary = inspector.get_pk_constraint("clips")["name"]
    finally:
        engine.dispose()
    assert "uq_clips_job_id_bank_id_index_in_bank" in uniques
    assert {"fk_clips_job_id_jobs", "fk_clips_bank_id_banks"} <= foreign
    assert primary == "pk_clips"
