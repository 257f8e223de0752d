"""Collaborative documents: a Yjs server on `/collab/{name}` (docs/collab.md).

Any Yjs client of the `y-websocket` protocol edits the same documents that Python
code opens with `Collab.document`. Documents are stored (updates appended before
they are sent, compacted into snapshots), shared by every node through the broker,
and guarded by an access rule: edit, read-only or none.

    from hubbub.apps import collab
    app = collab.of(hub)
    async with app.document("notes") as doc:
        doc.text("content").insert(0, "hello")
"""

from __future__ import annotations

import weakref
from pathlib import Path

from hubbub.apps.collab.access import Access, AccessRule
from hubbub.apps.collab.api import Document
from hubbub.apps.collab.app import COMPACT_EVERY, MAX_MESSAGE_BYTES, Collab
from hubbub.core.hub import Hub

__all__ = ["Access", "AccessRule", "Collab", "Document", "install", "of"]

MIGRATIONS = Path(__file__).parent / "migrations"
_installed: weakref.WeakKeyDictionary[Hub, Collab] = weakref.WeakKeyDictionary()


def install(
    hub: Hub, *, compact_every: int = COMPACT_EVERY, default_access: Access = "edit"
) -> Collab:
    """Add collaborative documents to `hub`: its tables, `/collab/{name}` and the API."""
    app = Collab(hub, compact_every=compact_every, default_access=default_access)
    hub.add_migrations("collab", str(MIGRATIONS))
    hub.socket_endpoint("/collab/{name}", app.connect, max_message_bytes=MAX_MESSAGE_BYTES)
    hub.on_start(app.start)
    hub.on_stop(app.stop)
    _installed[hub] = app
    return app


def of(hub: Hub) -> Collab:
    """The collab app installed on `hub` (KeyError if none)."""
    return _installed[hub]
