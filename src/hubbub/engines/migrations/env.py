"""Alembic's environment for every Hubbub migration history (see the package docstring).

It only runs through `SqlStore.upgrade` (on start, or `hubbub db upgrade`), which
passes its connection, the version table and a callback in `config.attributes`.
"""

from __future__ import annotations

from alembic import context

_attributes = context.config.attributes
if "connection" not in _attributes:
    raise RuntimeError(
        "Hubbub's migrations run through the store: `hubbub db upgrade` or Store.upgrade()"
    )

context.configure(
    connection=_attributes["connection"],
    version_table=_attributes["version_table"],
    on_version_apply=_attributes["on_version_apply"],
    # SQLite alters a table by copying it; revisions use op.batch_alter_table for that.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
