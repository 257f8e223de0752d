"""Run the hubbub.js SDK tests (`node --test tests/js/`) against a real server."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from hubbub.config import Settings
from hubbub.testing import running_server

HERE = Path(__file__).parent

# Development tokens live 24 hours (protocol 16.8): warning this long before expiry
# sends `auth.expiring` within a second of connecting (and of each refresh), so the
# SDK's token refresh is exercised without waiting. A second server, so the first
# keeps the default settings.
REFRESH_WARNING = 24 * 3600.0 - 1.0


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
async def test_hubbub_js_sdk_passes_its_node_tests_against_a_real_server() -> None:
    async with (
        running_server() as srv,
        running_server(Settings(refresh_warning=REFRESH_WARNING)) as refresh_srv,
    ):
        env = {
            **os.environ,
            "HUBBUB_URL": srv.url,
            "HUBBUB_HTTP_URL": srv.http_url,
            "HUBBUB_API_KEY": srv.api_key,
            "HUBBUB_REFRESH_URL": refresh_srv.url,
            "HUBBUB_REFRESH_HTTP_URL": refresh_srv.http_url,
        }
        proc = await asyncio.create_subprocess_exec(
            "node",
            "--experimental-websocket",
            "--no-warnings",
            "--test",
            "--test-reporter=spec",
            *sorted(str(p) for p in HERE.glob("*.test.mjs")),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    passed = re.search(r"pass (\d+)", text)
    assert passed is not None and int(passed.group(1)) >= 8, text
    assert re.search(r"fail 0\b", text), text
