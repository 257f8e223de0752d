"""Real stand-ins for what a notification leaves the hub through: a Web Push service
and an SMTP server, both on free loopback ports.

The push service does what a browser vendor's does before accepting a message: it
checks the VAPID JWT (ES256 over the key in `k`, audience = its own origin, not
expired) and then, playing the browser, decrypts the aes128gcm body with the
subscription's private key and auth secret (RFC 8291, written here from the RFC,
apart from the server's code).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import jwt
import msgspec
from aiohttp import web
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.services import free_port


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """A browser's push subscription: its own P-256 key pair and auth secret."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def public(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def subscription(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives a page."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(self.public), "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 section 3.4 and RFC 8188 section 2, for a message of one record."""
        salt, rs, idlen = body[:16], struct.unpack("!I", body[16:20])[0], body[20]
        sender_public = body[21 : 21 + idlen]
        ciphertext = body[21 + idlen :]
        assert idlen == 65 and len(ciphertext) <= rs, "one record, keyid = sender's key"
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
        shared = self.key.exchange(ec.ECDH(), sender)
        key_info = b"WebPush: info\x00" + self.public + sender_public
        ikm = _hkdf(self.auth, shared, key_info, 32)
        cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        plain = padded.rstrip(b"\x00")
        assert plain[-1:] == b"\x02", "the last record ends with delimiter 2"
        return plain[:-1]


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


@dataclass
class Pushed:
    """One message the push service accepted: who for, the decrypted JSON, the headers."""

    browser: str
    message: dict[str, Any]
    headers: dict[str, str]
    vapid_key: str


class PushService:
    """A push service on a free port: `/push/{name}` accepts, `/gone/{name}` answers 410."""

    def __init__(self) -> None:
        self.port = free_port()
        self.browsers: dict[str, Browser] = {}
        self.received: asyncio.Queue[Pushed] = asyncio.Queue()
        self.refused: list[str] = []
        self.expected_key: str | None = None  # the server's VAPID public key, when known

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def browser(self, name: str, *, gone: bool = False) -> Browser:
        """A new browser subscribed at this service."""
        path = "gone" if gone else "push"
        browser = Browser(f"{self.origin}/{path}/{name}")
        self.browsers[name] = browser
        return browser

    async def next(self, timeout: float = 10.0) -> Pushed:
        async with asyncio.timeout(timeout):
            return await self.received.get()

    async def _accept(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            vapid_key = self._check_vapid(request.headers.get("Authorization", ""))
            assert request.headers.get("Content-Encoding") == "aes128gcm"
            assert int(request.headers["TTL"]) >= 0
            message = msgspec.json.decode(self.browsers[name].decrypt(await request.read()))
        except Exception as exc:  # anything wrong is a refusal the test will see
            self.refused.append(f"{type(exc).__name__}: {exc}")
            return web.Response(status=400, text="refused")
        headers = {k: v for k, v in request.headers.items() if k in ("Urgency", "TTL", "Topic")}
        await self.received.put(Pushed(name, message, headers, vapid_key))
        return web.Response(status=201)

    def _check_vapid(self, authorization: str) -> str:
        scheme, _, params = authorization.partition(" ")
        assert scheme == "vapid", authorization
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
        claims = jwt.decode(fields["t"], key, algorithms=["ES256"], audience=self.origin)
        assert claims["exp"] <= time.time() + 24 * 3600, "RFC 8292: at most 24 hours"
        assert str(claims["sub"]).startswith(("mailto:", "https:"))
        if self.expected_key is not None:
            assert fields["k"] == self.expected_key, "signed with another key"
        return fields["k"]

    async def _gone(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=410)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PushService]:
        app = web.Application()
        app.router.add_post("/push/{name}", self._accept)
        app.router.add_post("/gone/{name}", self._gone)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        try:
            yield self
        finally:
            await runner.cleanup()


class _Mailbox:
    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Message]) -> None:
        self._loop = loop
        self._queue = queue

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self._loop.call_soon_threadsafe(self._queue.put_nowait, message)
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a free port; `next()` is the next mail it took."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mail: asyncio.Queue[Message] = asyncio.Queue()

    async def next(self, timeout: float = 10.0) -> Message:
        async with asyncio.timeout(timeout):
            return await self.mail.get()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[SmtpServer]:
        handler = _Mailbox(asyncio.get_running_loop(), self.mail)
        controller = Controller(handler, hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(controller.start)
        try:
            yield self
        finally:
            await asyncio.to_thread(controller.stop)
