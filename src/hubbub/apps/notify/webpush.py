"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291, RFC 8188).

The server's VAPID key is a P-256 key: `notify_vapid_private_key` (PEM, or the
base64url 32-byte scalar that web-push tools print), or in development mode one
made once and kept in the data directory (`vapid-private.pem`), like the JWT
secret. Browsers subscribe with its public key (`GET /api/notifications/vapid-key`).
"""

from __future__ import annotations

import base64
import logging
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hubbub.apps.notify.providers import Delivery, PushMessage, PushSubscription
from hubbub.config import Settings

log = logging.getLogger("hubbub.notify")

VAPID_FILE = "vapid-private.pem"
JWT_LIFETIME = 12 * 3600  # RFC 8292 allows at most 24 hours
SEND_TIMEOUT = 10.0


def b64url(data: bytes) -> str:
    """Unpadded base64url, as Web Push spells keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """The bytes of unpadded (or padded) base64url; ValueError when it is not."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


def parse_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM or from a base64url 32-byte scalar."""
    if "BEGIN" in text:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    else:
        raw = unb64url(text.strip())
        if len(raw) != 32:
            raise ValueError("a base64url VAPID private key is 32 bytes")
        key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the VAPID key must be a P-256 (prime256v1) key")
    return key


def load_vapid_key(settings: Settings) -> ec.EllipticCurvePrivateKey | None:
    """The VAPID key of the settings; made and kept in the data directory in development
    mode; None (no Web Push) in production when none is set."""
    if settings.notify_vapid_private_key:
        return parse_private_key(settings.notify_vapid_private_key)
    if not settings.dev_mode:
        return None
    path = Path(settings.data_dir) / VAPID_FILE
    if path.exists():
        return parse_private_key(path.read_text())
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem)
    path.chmod(0o600)
    return key


def public_key_of(key: ec.EllipticCurvePrivateKey) -> str:
    """The application server key: the uncompressed public point, base64url."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def check_subscription_keys(p256dh: str, auth: str) -> None:
    """ValueError unless `p256dh` is a P-256 point and `auth` a 16-byte secret."""
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(p256dh))
    if len(unb64url(auth)) != 16:
        raise ValueError("auth must be 16 bytes")


def encrypt(payload: bytes, subscription: PushSubscription) -> bytes:
    """`payload` encrypted for the browser of `subscription` (aes128gcm, RFC 8291)."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        payload,
        salt=os.urandom(16),
        private_key=ephemeral,
        dh=unb64url(subscription.p256dh),
        auth_secret=unb64url(subscription.auth),
        version="aes128gcm",
    )
    return body


class WebPushProvider:
    """Sends Web Push messages signed with a VAPID key (a `PushProvider`)."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        subject: str,
        ttl: int = 86400,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self._key = key
        self._subject = subject
        self._ttl = ttl
        self._timeout = timeout
        self._public_key = public_key_of(key)

    @property
    def public_key(self) -> str:
        return self._public_key

    def authorization(self, endpoint: str) -> str:
        """The `Authorization: vapid t=..., k=...` value for `endpoint`'s push service."""
        parts = urlsplit(endpoint)
        # The push service checks `exp` with its own wall clock: this is real time on
        # purpose, not the hub's injected clock.
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(time.time()) + JWT_LIFETIME,
            "sub": self._subject,
        }
        token = jwt.encode(claims, self._key, algorithm="ES256")
        return f"vapid t={token}, k={self._public_key}"

    async def send(self, subscription: PushSubscription, message: PushMessage) -> Delivery:
        """POST the encrypted message to the subscription's endpoint."""
        try:
            body = encrypt(message.payload, subscription)
        except (ValueError, http_ece.ECEException):
            return Delivery("failed", detail="the subscription's keys are unusable")
        headers = {
            "Authorization": self.authorization(subscription.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self._ttl),
            "Urgency": message.urgency,
        }
        if message.topic:
            headers["Topic"] = message.topic
        try:
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(subscription.endpoint, data=body, headers=headers) as response,
            ):
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Delivery("failed", detail=f"push service unreachable ({type(exc).__name__})")
        if 200 <= status < 300:
            return Delivery("sent", status)
        if status in (404, 410):
            return Delivery("gone", status, "the subscription has expired")
        return Delivery("failed", status, f"push service answered {status}")
