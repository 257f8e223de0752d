"""Chat: conversations, stored messages with acks and dedup, typing, read receipts,
presence, history, search and attachments (PROTOCOL.md section 12, docs/chat.md).

`install(hub)` registers the app on a hub and returns the `ChatApp`, which is also
the Python API (`create_conversation`, `send_message`, `mark_read`).
"""

from __future__ import annotations

from pathlib import Path

from hubbub.apps.chat import http
from hubbub.apps.chat.app import ChatApp, Sent
from hubbub.apps.chat.attachments import AttachmentFiles
from hubbub.core.hub import Hub

MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = ["ChatApp", "Sent", "install", "of"]


def install(hub: Hub) -> ChatApp:
    """Add chat to `hub`: its tables, WebSocket handlers and `/api/conversations` routes."""
    hub.add_migrations("chat", str(MIGRATIONS))
    chat = ChatApp(hub, AttachmentFiles(Path(hub.settings.data_dir) / "chat-attachments"))
    chat.register()
    http.register(chat)
    hub.apps["chat"] = chat
    return chat


def of(hub: Hub) -> ChatApp:
    """The chat app installed on `hub` (the Python API of chat)."""
    app = hub.apps.get("chat")
    if not isinstance(app, ChatApp):
        raise LookupError("chat is not installed on this hub")
    return app
