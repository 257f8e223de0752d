"""The pluggable ways to reach a user who is not connected: push and email.

`install(hub, push=..., email=...)` takes any object with the matching
method; the defaults are Web Push (`webpush.WebPushProvider`) and SMTP
(`smtp.SmtpEmailProvider`). A provider reports what happened as a `Delivery`
and does not raise for a failed delivery; the fallback records every outcome.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

Outcome = Literal["sent", "failed", "gone", "skipped"]


class Delivery(msgspec.Struct, frozen=True):
    """What one attempt came to.

    `sent`: the service accepted it. `gone`: the target no longer exists (a push
    subscription answered 404 or 410) and is forgotten. `failed`: anything else
    (`detail` says what). `status` is the service's answer code when there is one.
    """

    outcome: Outcome
    status: int | None = None
    detail: str = ""


class PushSubscription(msgspec.Struct, frozen=True):
    """A browser's push subscription (the W3C `PushSubscription.toJSON()` fields)."""

    endpoint: str
    p256dh: str  # the browser's P-256 public key, base64url
    auth: str  # the browser's 16-byte auth secret, base64url


class PushMessage(msgspec.Struct, frozen=True):
    """What to push: `payload` (JSON bytes, at most 3,800), its urgency and topic."""

    payload: bytes
    urgency: Literal["very-low", "low", "normal", "high"] = "normal"
    topic: str | None = None


class OutgoingEmail(msgspec.Struct, frozen=True):
    """One plain-text email to one address."""

    to: str
    subject: str
    text: str
    notification_id: str


class PushProvider(Protocol):
    """Sends one message to one push subscription.

    Contract: returns a `Delivery` for every outcome (never raises for a refused
    or unreachable service); `gone` only when the service says the subscription
    has expired or was removed.
    """

    @property
    def public_key(self) -> str:
        """The application server key browsers subscribe with (base64url, uncompressed)."""
        ...

    async def send(self, subscription: PushSubscription, message: PushMessage) -> Delivery: ...


class EmailProvider(Protocol):
    """Sends one email. Contract: returns a `Delivery` for every outcome, never raises."""

    async def send(self, email: OutgoingEmail) -> Delivery: ...
