"""Experiment, not the implementation: `hubbub serve` with two hot-path changes patched in, to
measure what they would bring before they are made in src/hubbub (see docs/benchmarks.md,
"Profile and plan"). Run it through the suite:

    python benchmarks/run.py --hubbub-entry benchmarks/experiments/hot_path.py --peers none ...

HUBBUB_EXP_COALESCE=1 (default on): frames written to a connection during one event-loop
    iteration are joined and handed to the transport once, at the end of the iteration (one
    `send()` per subscriber per iteration instead of one per frame). Each frame stays its own
    WebSocket frame; only the system calls are coalesced.
HUBBUB_EXP_GC=1 (default on): after start-up, `gc.freeze()` and a gen-0 threshold of 50,000
    (CPython's default, 700, makes the cyclic GC walk every connection's objects again and
    again while thousands of connections open at once).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from typing import Any

from hubbub.transport import server

COALESCE = os.environ.get("HUBBUB_EXP_COALESCE", "1") == "1"
GC_TUNED = os.environ.get("HUBBUB_EXP_GC", "1") == "1"

_dirty: list[Any] = []
_scheduled = [False]


def _flush() -> None:
    _scheduled[0] = False
    dirty = _dirty[:]
    _dirty.clear()
    for conn in dirty:
        out = conn._out
        conn._out = None
        if out and not conn._transport.is_closing():
            conn._transport.write(out[0] if len(out) == 1 else b"".join(out))


class CoalescingConnection(server.SocketConnection):
    __slots__ = ("_out",)

    def __init__(self, ws: Any, transport: Any) -> None:
        super().__init__(ws, transport)
        self._out: list[bytes] | None = None

    def write(self, frame: bytes) -> None:
        if self.close_sent or self._transport.is_closing():
            return
        out = self._out
        if out is None:
            self._out = [frame]
            _dirty.append(self)
            if not _scheduled[0]:
                _scheduled[0] = True
                asyncio.get_running_loop().call_soon(_flush)
        else:
            out.append(frame)

    def buffered(self) -> int:
        pending = sum(len(f) for f in self._out) if self._out else 0
        return int(self._transport.get_write_buffer_size()) + pending

    def close(self, code: int, reason: str) -> None:
        out, self._out = self._out, None
        if out and not self._transport.is_closing():
            self._transport.write(b"".join(out))
        super().close(code, reason)


if COALESCE:
    server.SocketConnection = CoalescingConnection  # type: ignore[misc]
if GC_TUNED:
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

if __name__ == "__main__":
    from hubbub.cli import main

    sys.exit(main(sys.argv[1:]))
