"""Build a node from settings: secrets, broker, store and the bundled apps.

This is the composition root: it sits above the layers of DESIGN.md and is the
one place that picks engines and installs apps; `hubbub serve`, the test helper
and applications that embed Hubbub all build their hub here.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from hubbub.apps import chat, collab, notify, serverstats
from hubbub.clock import Clock
from hubbub.config import Settings
from hubbub.core.auth import TokenVerifier
from hubbub.core.hub import Hub
from hubbub.engines.broker import Broker
from hubbub.engines.memory import MemoryBroker
from hubbub.engines.sql import open_store

log = logging.getLogger("hubbub")


class ConfigError(Exception):
    """The settings cannot make a working node; the message says what to set."""


def _kept_secret(data_dir: str, name: str) -> str:
    path = Path(data_dir) / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def resolve_secrets(settings: Settings) -> Settings:
    """Fill in the JWT secret and API key: kept in the data directory in development
    mode, required otherwise."""
    import msgspec

    secret, api_key = settings.jwt_secret, settings.api_key
    if not secret and not settings.jwt_public_key:
        if not settings.dev_mode:
            raise ConfigError("set HUBBUB_JWT_SECRET or HUBBUB_JWT_PUBLIC_KEY (production mode)")
        secret = _kept_secret(settings.data_dir, "jwt-secret")
    if not api_key:
        if not settings.dev_mode:
            raise ConfigError("set HUBBUB_API_KEY (production mode)")
        api_key = _kept_secret(settings.data_dir, "api-key")
    return msgspec.structs.replace(settings, jwt_secret=secret, api_key=api_key)


def make_broker(settings: Settings, clock: Clock | None) -> Broker:
    url = settings.broker_url
    if url.startswith("memory://"):
        return MemoryBroker(clock)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from hubbub.engines.redis import RedisBroker

        return RedisBroker.from_url(url, node_id=settings.node_name, clock=clock)
    raise ConfigError(f"unsupported broker URL {url!r} (use memory:// or redis://host:port/db)")


def build_hub(settings: Settings, *, clock: Clock | None = None) -> Hub:
    """A hub with every secret resolved and the broker the settings name."""
    settings = resolve_secrets(settings)
    verifier = TokenVerifier(
        secret=settings.jwt_secret, public_key=settings.jwt_public_key, api_key=settings.api_key
    )
    hub = Hub(
        settings,
        verifier=verifier,
        broker=make_broker(settings, clock),
        clock=clock,
        store_opener=lambda: open_store(settings.database_url, settings.data_dir, clock=clock),
    )
    serverstats.install(hub)
    notify.install(hub)
    chat.install(hub)
    collab.install(hub)
    return hub
