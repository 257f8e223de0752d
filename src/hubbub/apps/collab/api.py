"""The Python document API: server-side code reads and changes a live document.

    async with collab.document("notes") as doc:
        doc.text("content").insert(0, "Agenda\\n")
        doc.map("meta")["title"] = "Monday"
        print(str(doc.text("content")))

A change made through the API is a Yjs change like any client's: the room stores it,
sends it to every client connected on any node, and the `async with` block ends once
every change made in it is stored and sent (`flush` waits for that at any point).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pycrdt

from hubbub.apps.collab.room import Room


class Document:
    """A document opened from Python; valid inside its `Collab.document` block."""

    def __init__(self, room: Room) -> None:
        self._room = room

    @property
    def name(self) -> str:
        return self._room.name

    @property
    def doc(self) -> pycrdt.Doc[Any]:
        """The live `pycrdt.Doc` (for types this API does not name)."""
        return self._room.doc

    def text(self, name: str) -> pycrdt.Text:
        """The shared text `name` (`ydoc.getText(name)` in JavaScript)."""
        text: pycrdt.Text = self._room.doc.get(name, type=pycrdt.Text)
        return text

    def map(self, name: str) -> pycrdt.Map[Any]:
        """The shared map `name` (`ydoc.getMap(name)`)."""
        shared: pycrdt.Map[Any] = self._room.doc.get(name, type=pycrdt.Map)
        return shared

    def array(self, name: str) -> pycrdt.Array[Any]:
        """The shared array `name` (`ydoc.getArray(name)`)."""
        shared: pycrdt.Array[Any] = self._room.doc.get(name, type=pycrdt.Array)
        return shared

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several changes into one update (clients see them at once)."""
        with self._room.doc.transaction():
            yield

    def state(self) -> bytes:
        """The whole document as one Yjs update (`Y.encodeStateAsUpdate`)."""
        return self._room.doc.get_update()

    async def flush(self) -> None:
        """Wait until every change made so far is stored and sent to the clients."""
        await self._room.flushed()
