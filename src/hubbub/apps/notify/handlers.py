"""The notifications app's WebSocket messages (docs/protocol.md 16.13).

Every one acts on the caller's own notifications; an id that is not the
caller's is `not_found`, as if it did not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from hubbub.apps.notify.model import IdsPayload, ListQuery, OneId
from hubbub.core.hub import Hub, Request

if TYPE_CHECKING:
    from hubbub.apps.notify.service import Marked, NotificationService


class NoFields(msgspec.Struct, frozen=True):
    pass


def register(hub: Hub, service: NotificationService) -> None:
    """Install the `notifications.*` handlers on `hub`."""

    def answer(req: Request, marked: Marked) -> None:
        req.reply("notifications.updated", msgspec.to_builtins(marked))

    @hub.on("notifications.list", ListQuery)
    async def list_(req: Request, q: ListQuery) -> None:
        page = await service.page(req.identity.user_id, q)
        req.reply("notifications.page", msgspec.to_builtins(page))

    @hub.on("notifications.get", OneId)
    async def get(req: Request, p: OneId) -> None:
        found = await service.get(req.identity.user_id, p.notification_id)
        req.reply("notifications.item", found)

    @hub.on("notifications.unread_count", NoFields)
    async def count(req: Request, _: NoFields) -> None:
        unread = await service.unread_count(req.identity.user_id)
        req.reply("notifications.unread_count", {"count": unread})

    @hub.on("notifications.mark_read", IdsPayload)
    async def mark_read(req: Request, p: IdsPayload) -> None:
        answer(req, await service.mark_read(req.identity.user_id, p.notification_ids))

    @hub.on("notifications.mark_all_read", NoFields)
    async def mark_all_read(req: Request, _: NoFields) -> None:
        answer(req, await service.mark_all_read(req.identity.user_id))

    @hub.on("notifications.mark_seen", IdsPayload)
    async def mark_seen(req: Request, p: IdsPayload) -> None:
        answer(req, await service.mark_seen(req.identity.user_id, p.notification_ids))

    @hub.on("notifications.archive", IdsPayload)
    async def archive(req: Request, p: IdsPayload) -> None:
        answer(req, await service.archive(req.identity.user_id, p.notification_ids))
