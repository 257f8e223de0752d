"""Notifications (PROTOCOL.md section 11): stored, prioritized, preference-aware, read
state synced on every device, with Web Push and email when the user is away.

`install(hub)` (node.py does it) registers the app's tables, WebSocket messages and
HTTP routes, and makes it the hub's notifier, so other apps reach it through
`hub.notify(Notice(...))`. From Python::

    from hubbub.apps import notify
    from hubbub.core.notices import Notice

    service = notify.service_of(hub)
    made = await service.create(Notice(user_id="alice", type="billing.failed",
                                       priority="critical", title="Card declined"))
    await service.mark_read("alice", [made["id"]])

The guide is docs/notifications.md; the wire is docs/protocol.md 16.13.
"""

from __future__ import annotations

import logging

from hubbub.apps.notify import handlers, routes
from hubbub.apps.notify.migrations import LOCATION
from hubbub.apps.notify.providers import (
    Delivery,
    EmailProvider,
    OutgoingEmail,
    PushMessage,
    PushProvider,
    PushSubscription,
)
from hubbub.apps.notify.service import Marked, NotificationService, Page
from hubbub.apps.notify.smtp import SmtpEmailProvider
from hubbub.apps.notify.webpush import WebPushProvider, load_vapid_key
from hubbub.config import Settings
from hubbub.core.hub import Hub

__all__ = [
    "Delivery",
    "EmailProvider",
    "Marked",
    "NotificationService",
    "OutgoingEmail",
    "Page",
    "PushMessage",
    "PushProvider",
    "PushSubscription",
    "SmtpEmailProvider",
    "WebPushProvider",
    "default_email",
    "default_push",
    "install",
    "service_of",
]

log = logging.getLogger("hubbub.notify")


def default_push(settings: Settings) -> PushProvider | None:
    """Web Push with the settings' VAPID key (kept in the data directory in development)."""
    key = load_vapid_key(settings)
    if key is None:
        log.warning("Web Push is off: set notify_vapid_private_key (HUBBUB_NOTIFY_VAPID_...)")
        return None
    return WebPushProvider(key, subject=settings.notify_vapid_subject, ttl=settings.notify_push_ttl)


def default_email(settings: Settings) -> EmailProvider | None:
    """SMTP to `notify_smtp_host`, or None (no email) when it is not set."""
    if not settings.notify_smtp_host:
        return None
    return SmtpEmailProvider(
        settings.notify_smtp_host,
        settings.notify_smtp_port,
        sender=settings.notify_smtp_from,
        username=settings.notify_smtp_username,
        password=settings.notify_smtp_password,
        tls=settings.notify_smtp_tls,
    )


_UNSET: object = object()


def install(
    hub: Hub,
    *,
    push: PushProvider | None | object = _UNSET,
    email: EmailProvider | None | object = _UNSET,
) -> NotificationService:
    """Add notifications to `hub` and make them its notifier; returns the service.

    `push` and `email` replace the default providers (None turns one off).
    """
    service = NotificationService(
        hub,
        push=default_push(hub.settings) if push is _UNSET else push,  # type: ignore[arg-type]
        email=default_email(hub.settings) if email is _UNSET else email,  # type: ignore[arg-type]
    )
    hub.add_migrations("notify", str(LOCATION))
    handlers.register(hub, service)
    routes.register(hub, service)
    hub.on_start(service.fallback.start)
    hub.on_stop(service.fallback.stop)
    hub.notifier = service
    return service


def service_of(hub: Hub) -> NotificationService:
    """The notifications service installed on `hub` (LookupError when there is none)."""
    if not isinstance(hub.notifier, NotificationService):
        raise LookupError("the notifications app is not installed on this hub")
    return hub.notifier
