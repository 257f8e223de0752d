"""Hubbub: a real-time WebSocket hub for Python.

Channels with per-channel sequence numbers, history and recovery after
reconnect, presence, JWT auth, bounded send queues, rate and size limits.
"""

from hubbub.clock import Clock, ManualClock, SystemClock
from hubbub.config import NamespaceOptions, Settings, load_settings
from hubbub.core.auth import Identity, TokenVerifier
from hubbub.core.hub import Hub, Request
from hubbub.engines.broker import Broker, Publication
from hubbub.engines.memory import MemoryBroker
from hubbub.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HubbubError,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnknownType,
)

__version__ = "0.1.0"

__all__ = [
    "BadRequest",
    "Broker",
    "Clock",
    "Conflict",
    "Forbidden",
    "Hub",
    "HubbubError",
    "Identity",
    "ManualClock",
    "MemoryBroker",
    "NamespaceOptions",
    "NotFound",
    "Publication",
    "RateLimited",
    "Request",
    "Settings",
    "SystemClock",
    "TokenVerifier",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UnknownType",
    "__version__",
    "load_settings",
]
