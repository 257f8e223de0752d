"""The Python client SDK of Hubbub: `Client` connects to a server's `/ws` endpoint,
reconnects and recovers by itself, and delivers typed events (see docs/client.md)."""

from hubbub.client.backoff import Backoff
from hubbub.client.channels import ChannelBook
from hubbub.client.client import Client
from hubbub.client.connection import TokenSource
from hubbub.client.dispatch import EventStream, Handler
from hubbub.client.errors import (
    AuthenticationFailed,
    ClientClosed,
    ClientError,
    ConnectFailed,
    ConnectionLost,
    ForbiddenClose,
    NotConnected,
    OfflineQueueFull,
    RequestError,
    RequestTimeout,
)
from hubbub.client.events import (
    Connected,
    Disconnected,
    Event,
    History,
    Message,
    PresenceMember,
    RecoveryFailed,
    ServerError,
    Subscription,
    SubscriptionError,
    SubscriptionReset,
)
from hubbub.client.tracker import ChannelTracker, ReplayRequest, Step

__all__ = [
    "AuthenticationFailed",
    "Backoff",
    "ChannelBook",
    "ChannelTracker",
    "Client",
    "ClientClosed",
    "ClientError",
    "ConnectFailed",
    "Connected",
    "ConnectionLost",
    "Disconnected",
    "Event",
    "EventStream",
    "ForbiddenClose",
    "Handler",
    "History",
    "Message",
    "NotConnected",
    "OfflineQueueFull",
    "PresenceMember",
    "RecoveryFailed",
    "ReplayRequest",
    "RequestError",
    "RequestTimeout",
    "ServerError",
    "Step",
    "Subscription",
    "SubscriptionError",
    "SubscriptionReset",
    "TokenSource",
]
