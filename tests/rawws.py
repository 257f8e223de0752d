"""A bare WebSocket client over a socket with a tiny receive buffer, for slow-reader tests."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any


class RawWs:
    """Speaks just enough RFC 6455 to be a client that can stop reading at will."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, token: str, rcvbuf: int = 4096) -> RawWs:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send_json(self, frame: dict[str, Any]) -> None:
        data = json.dumps(frame).encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            header = bytes((0x81, 0x80 | n))
        elif n < 65536:
            header = bytes((0x81, 0x80 | 126)) + struct.pack(">H", n)
        else:
            header = bytes((0x81, 0x80 | 127)) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.writer.write(header + mask + masked)

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame as (opcode, payload)."""
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack(">Q", await self.reader.readexactly(8))
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def read_json(self) -> dict[str, Any]:
        """The next text frame as JSON; raises ConnectionError on a close frame."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                raise ConnectionError(f"closed with {code}")
            if opcode == 0x1:
                return json.loads(payload)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.writer.transport.abort()
