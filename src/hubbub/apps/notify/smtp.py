"""Email over SMTP with `aiosmtplib`: the default `EmailProvider` when `notify_smtp_host` is set."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid
from typing import Literal

import aiosmtplib

from hubbub.apps.notify.providers import Delivery, OutgoingEmail

SEND_TIMEOUT = 15.0


class SmtpEmailProvider:
    """Sends each email in its own SMTP session (critical notifications are rare)."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str = "hubbub@localhost",
        username: str | None = None,
        password: str | None = None,
        tls: Literal["none", "starttls", "tls"] = "none",
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self._username = username
        self._password = password
        self._tls = tls
        self._timeout = timeout

    def message(self, email: OutgoingEmail) -> EmailMessage:
        """The MIME message of `email`."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message["X-Hubbub-Notification"] = email.notification_id
        message.set_content(email.text)
        return message

    async def send(self, email: OutgoingEmail) -> Delivery:
        """Hand `email` to the SMTP server; `sent` once the server accepted every recipient."""
        try:
            refused, answer = await aiosmtplib.send(
                self.message(email),
                hostname=self.host,
                port=self.port,
                username=self._username,
                password=self._password,
                use_tls=self._tls == "tls",
                start_tls=self._tls == "starttls",
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Delivery("failed", detail=f"SMTP: {type(exc).__name__}")
        if refused:
            code = next(iter(refused.values()))[0]
            return Delivery("failed", code, "the SMTP server refused the recipient")
        return Delivery("sent", 250, answer[:200])
