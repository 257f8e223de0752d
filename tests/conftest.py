from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hubbub.testing import RunningServer, running_server


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with running_server() as srv:
        yield srv
