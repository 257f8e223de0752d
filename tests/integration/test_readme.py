"""The README's ten lines of Python run as written against a real server."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from hubbub.testing import RunningServer

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readme_example_prints_the_published_event(server: RunningServer) -> None:
    example = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert example is not None
    code = example.group(1).replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert out.decode().strip() == "news 1 {'headline': 'Hubbub is up'}"
