"""Group commit: concurrent writes share a batch, each caller hears its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.core.groupcommit import GroupCommit, Pending


async def test_writes_queued_while_a_batch_runs_share_the_next_batch() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def write(batch: list[Pending[int, int]]) -> None:
        batches.append([p.item for p in batch])
        if len(batches) == 1:
            await release.wait()  # the first transaction is slow; others queue meanwhile
        for p in batch:
            p.done(p.item * 10)

    group: GroupCommit[int, int] = GroupCommit(write, max_batch=3)
    first = asyncio.ensure_future(group.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(group.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    assert len(group) == 5
    release.set()
    assert await asyncio.gather(first, *rest) == [0, 10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 3], [4, 5]]


async def test_each_item_gets_its_own_error_and_a_failed_batch_fails_only_its_items() -> None:
    async def write(batch: list[Pending[int, int]]) -> None:
        if any(p.item == 99 for p in batch):
            raise ConnectionError("database gone")
        for p in batch:
            if p.item < 0:
                p.fail(ValueError("negative"))
            elif p.item != 7:  # 7 is left undecided
                p.done(p.item)

    group: GroupCommit[int, int] = GroupCommit(write)
    results = await asyncio.gather(
        group.submit(1), group.submit(-1), group.submit(7), return_exceptions=True
    )
    assert results[0] == 1
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], RuntimeError)
    with pytest.raises(ConnectionError):
        await group.submit(99)
    assert await group.submit(2) == 2  # the writer starts again after a failure
