"""One typed settings object, read from `hubbub.toml` < `HUBBUB_*` environment < flags.

The names of PROTOCOL.md section 15 are fixed: each field below is the
lower-case form of its environment variable without the `HUBBUB_` prefix, and
the same key in `hubbub.toml`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

SubscribePolicy = Literal["authenticated", "token", "owner", "none"]
PublishPolicy = Literal["authenticated", "token", "server"]


class NamespaceOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a namespace of channels does (PROTOCOL.md section 4).

    `subscribe`: who may subscribe: any authenticated user, only users whose
    token grants the channel (`channels` claim), only the owner (`user:`), or
    nobody but apps. `publish`: any authenticated user, those whose token grants
    it (`publish` claim), or only the server (HTTP API key and Python API).
    """

    history_size: int = 1000
    history_ttl: float = 600.0
    presence: bool = True
    subscribe: SubscribePolicy = "authenticated"
    publish: PublishPolicy = "authenticated"
    keep_last_value: bool = False
    conflation: bool = False


DEFAULT_NAMESPACES: dict[str, NamespaceOptions] = {
    "": NamespaceOptions(),
    "user": NamespaceOptions(presence=False, subscribe="owner", publish="server"),
    "chat": NamespaceOptions(subscribe="token", publish="server"),
    "market": NamespaceOptions(presence=False, publish="server"),
    "game": NamespaceOptions(subscribe="token", publish="server"),
    "device": NamespaceOptions(subscribe="token", publish="server"),
    # Yjs traffic between nodes (apps/collab): only the collab app reads it, by its own rules.
    "collab": NamespaceOptions(presence=False, subscribe="none", publish="server"),
    "metrics": NamespaceOptions(
        presence=False, publish="server", keep_last_value=True, conflation=True, history_size=100
    ),
}


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every setting of a Hubbub node, with its default."""

    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    api_key: str | None = None
    broker_url: str = "memory://"
    database_url: str | None = None
    data_dir: str = "./hubbub-data"
    node_id: str | None = None
    dev: bool | None = None

    max_frame_bytes: int = 64 * 1024
    rate_per_second: float = 1000.0
    rate_burst: int = 2000
    rate_strikes: int = 200
    bad_frame_limit: int = 20
    bad_frame_window: float = 10.0
    heartbeat_interval: float = 25.0
    auth_timeout: float = 5.0
    refresh_warning: float = 30.0
    presence_grace: float = 5.0
    send_queue_bytes: int = 1024 * 1024
    send_high_water: int = 64 * 1024
    max_subscriptions: int = 1000
    max_upload_bytes: int = 5 * 1024 * 1024
    allowed_origins: list[str] = msgspec.field(default_factory=list)
    namespaces: dict[str, NamespaceOptions] = msgspec.field(default_factory=dict)

    # The notifications app (docs/notifications.md).
    notify_fallback_delay: float = 60.0  # seconds before push or email, if still unread
    notify_vapid_private_key: str | None = None  # PEM or base64url; dev: kept in data_dir
    notify_vapid_subject: str = "mailto:hubbub@localhost"
    notify_push_ttl: int = 86400  # seconds a push service keeps an undelivered message
    notify_smtp_host: str | None = None  # no host: no email
    notify_smtp_port: int = 25
    notify_smtp_from: str = "hubbub@localhost"
    notify_smtp_username: str | None = None
    notify_smtp_password: str | None = None
    notify_smtp_tls: Literal["none", "starttls", "tls"] = "none"
    notify_base_url: str | None = None  # where emails link to (the notification page)

    @property
    def dev_mode(self) -> bool:
        """Development mode: explicit, or on when bound to a loopback address."""
        if self.dev is not None:
            return self.dev
        return is_loopback(self.host)

    @property
    def node_name(self) -> str:
        return self.node_id or f"{socket.gethostname()}:{self.port}"

    def namespace(self, name: str) -> NamespaceOptions:
        """The options of namespace `name`.

        A configured namespace starts from the options of the configured default
        namespace (`""`) or, for a reserved one (`user`, `chat`, ...), from its
        reserved options; only the options set to something other than the plain
        default change. So tuning `[namespaces.user] history_size` keeps `user:`
        owner-only.
        """
        base = DEFAULT_NAMESPACES.get(name) or self.namespaces.get("") or DEFAULT_NAMESPACES[""]
        configured = self.namespaces.get(name)
        if configured is None or name == "":
            return configured or base
        plain = NamespaceOptions()
        changed = {
            f: getattr(configured, f)
            for f in NamespaceOptions.__struct_fields__
            if getattr(configured, f) != getattr(plain, f)
        }
        return msgspec.structs.replace(base, **changed)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_FIELDS = {f.name: f for f in msgspec.structs.fields(Settings)}


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELDS:
        if name == "namespaces":
            continue
        raw = environ.get("HUBBUB_" + name.upper())
        if raw is None:
            continue
        if name == "allowed_origins":
            out[name] = [o.strip() for o in raw.split(",") if o.strip()]
        elif name == "dev":
            out[name] = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            out[name] = raw
    return out


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read settings: file < environment < overrides (flags). Values are checked and typed."""
    merged: dict[str, Any] = {}
    path = Path(config_file) if config_file else Path("hubbub.toml")
    if config_file or path.exists():
        with path.open("rb") as f:
            merged.update(tomllib.load(f))
    merged.update(_from_env(os.environ if environ is None else environ))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return msgspec.convert(merged, Settings, strict=False)
