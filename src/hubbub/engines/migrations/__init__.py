"""Hubbub's Alembic migrations, run in-process on the store's own connection.

The core's revisions live in `versions/`; each app registers a directory of its own
(`Store.add_migrations`). Every history keeps its version in its own table,
`hubbub_version_<name>`, so Hubbub never touches the `alembic_version` of a host
application sharing the database. `env.py` is the one Alembic environment of all of
them: it runs on the connection and in the transaction that `SqlStore.upgrade` holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).parent
CORE_VERSIONS = MIGRATIONS_DIR / "versions"


def version_table(name: str) -> str:
    """The table that holds the revision of migration history `name`."""
    return f"hubbub_version_{name}"


def _config(location: Path) -> Config:
    config = Config()
    # Config values go through configparser, which treats "%" as interpolation.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(location).replace("%", "%%"))
    return config


def upgrade_to_head(connection: sa.Connection, name: str, location: Path) -> list[str]:
    """Apply the pending revisions of history `name` in `location`; return their ids.

    Runs inside the caller's transaction on `connection`, which commits or rolls back
    everything at once.
    """
    applied: list[str] = []

    def record(*, step: MigrationInfo, **_: Any) -> None:
        applied.extend(step.up_revision_ids)

    config = _config(location)
    config.attributes.update(
        connection=connection, version_table=version_table(name), on_version_apply=record
    )
    command.upgrade(config, "head")
    return applied


def current_revision(connection: sa.Connection, name: str) -> str | None:
    """The revision the database is at for history `name`; None before its first."""
    context = MigrationContext.configure(connection, opts={"version_table": version_table(name)})
    return context.get_current_revision()


def head_revision(location: Path = CORE_VERSIONS) -> str | None:
    """The newest revision of the history in `location` (the core's by default)."""
    script = ScriptDirectory(str(MIGRATIONS_DIR), version_locations=[str(location)])
    return script.get_current_head()
