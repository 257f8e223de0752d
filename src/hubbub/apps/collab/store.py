"""Durable documents: updates appended as they come, compacted into one snapshot per document.

A document is stored as at most one snapshot row (its whole encoded state at the
time of the last compaction) plus the updates appended since. Loading applies the
snapshot, then the updates. Compaction merges both into a new snapshot and deletes
exactly the update rows it merged, inside one transaction that holds the snapshot
row's lock, so that updates appended meanwhile by this or another node are never
lost (ids from a sequence can commit out of order, so rows are deleted by id, not by
range).

Storage bound: right after a compaction a document takes its encoded state (what
Yjs's `encodeStateAsUpdate` gives: the live content plus Yjs's small tombstones for
deleted text) and no update rows; between compactions at most `compact_every` rows
are added. See docs/collab.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pycrdt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.engines.store import AUTO_ID, Store, metadata

DOC_NAME_MAX = 200

updates_table = sa.Table(
    "collab_updates",
    metadata,
    sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("doc", sa.String(DOC_NAME_MAX), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),  # milliseconds
    sa.Index("ix_collab_updates_doc_id", "doc", "id"),
)

snapshots_table = sa.Table(
    "collab_snapshots",
    metadata,
    sa.Column("doc", sa.String(DOC_NAME_MAX), primary_key=True),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.Column("updated_at", sa.BigInteger(), nullable=False),  # milliseconds
)

_DELETE_CHUNK = 500  # ids per DELETE ... IN (...), well under every database's limit


@dataclass(frozen=True, slots=True)
class StoredSize:
    """How much a document takes in the store: update rows and bytes in all."""

    update_rows: int
    update_bytes: int
    snapshot_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.update_bytes + self.snapshot_bytes


async def load(store: Store, doc: str) -> list[bytes]:
    """The snapshot (if any) then every update of `doc`, in the order they were stored."""
    async with store.read() as conn:
        snapshot = await conn.scalar(
            sa.select(snapshots_table.c.data).where(snapshots_table.c.doc == doc)
        )
        rows = await conn.execute(
            sa.select(updates_table.c.data)
            .where(updates_table.c.doc == doc)
            .order_by(updates_table.c.id)
        )
        updates = [bytes(row.data) for row in rows]
    return ([bytes(snapshot)] if snapshot else []) + updates


async def append(store: Store, doc: str, updates: list[bytes], now_ms: int) -> None:
    """Store `updates` of `doc` in one transaction; durable when this returns."""
    if not updates:
        return
    async with store.begin() as conn:
        await conn.execute(
            sa.insert(updates_table),
            [{"doc": doc, "data": u, "created_at": now_ms} for u in updates],
        )


async def compact(store: Store, doc: str, now_ms: int, extra: bytes | None = None) -> int:
    """Merge `doc`'s snapshot, its update rows and `extra` (a state held in memory) into one
    snapshot; delete the rows merged. Returns how many rows were merged."""
    async with store.begin() as conn:
        snapshot = await _lock_snapshot(store, conn, doc, now_ms)
        rows = (
            await conn.execute(
                sa.select(updates_table.c.id, updates_table.c.data)
                .where(updates_table.c.doc == doc)
                .order_by(updates_table.c.id)
            )
        ).all()
        merged: pycrdt.Doc[Any] = pycrdt.Doc()
        for blob in [snapshot, *(bytes(r.data) for r in rows), extra]:
            if blob:
                merged.apply_update(blob)
        await conn.execute(
            sa.update(snapshots_table)
            .where(snapshots_table.c.doc == doc)
            .values(data=merged.get_update(), updated_at=now_ms)
        )
        ids = [r.id for r in rows]
        for start in range(0, len(ids), _DELETE_CHUNK):
            chunk = ids[start : start + _DELETE_CHUNK]
            await conn.execute(sa.delete(updates_table).where(updates_table.c.id.in_(chunk)))
    return len(ids)


async def _lock_snapshot(store: Store, conn: AsyncConnection, doc: str, now_ms: int) -> bytes:
    """The snapshot of `doc` (made empty if missing), locked until the transaction ends.

    Two nodes compacting at once take turns: the second waits, then reads the first's
    snapshot and only the rows the first left. (SQLite serializes writers anyway.)
    """
    await store.insert_idempotent(
        snapshots_table,
        {"doc": doc, "data": b"", "updated_at": now_ms},
        key=["doc"],
        conn=conn,
    )
    query = sa.select(snapshots_table.c.data).where(snapshots_table.c.doc == doc)
    if store.dialect == "postgresql":
        query = query.with_for_update()
    return bytes(await conn.scalar(query) or b"")


async def stored_size(store: Store, doc: str) -> StoredSize:
    """What `doc` takes in the store now."""
    async with store.read() as conn:
        rows, update_bytes = (
            await conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(sa.func.length(updates_table.c.data)), 0),
                ).where(updates_table.c.doc == doc)
            )
        ).one()
        snapshot = await conn.scalar(
            sa.select(sa.func.length(snapshots_table.c.data)).where(snapshots_table.c.doc == doc)
        )
    return StoredSize(int(rows), int(update_bytes), int(snapshot or 0))
