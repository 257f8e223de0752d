"""Where the real services of the test suite are, and how to start a private Redis.

Tests that need Redis, PostgreSQL or Mosquitto fail (never skip) when the service is
missing: a silent skip in CI would hide a broken feature.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

REDIS_URL = os.environ.get("HUBBUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get(
    "HUBBUB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MQTT_URL = os.environ.get("HUBBUB_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_redis(*, appendonly: bool = False) -> Iterator[tuple[str, int]]:
    """A `redis-server` of our own on a free port, that a test may stop and restart.

    Yields (url, port). The test can restart it with `restart_redis(port, dir)`.
    """
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (scripts/test installs it)"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hubbub-redis-") as workdir:
        proc = start_redis(port, workdir, appendonly=appendonly)
        try:
            yield f"redis://127.0.0.1:{port}/0", port
        finally:
            proc.kill()
            proc.wait()


def start_redis(port: int, workdir: str, *, appendonly: bool = False) -> subprocess.Popen[bytes]:
    args = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "yes" if appendonly else "no", "--dir", workdir,
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"redis-server did not start on port {port}")
