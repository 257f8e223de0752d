"""The public API is what `hubbub.__all__` says: no more, no less, and all of it importable."""

from __future__ import annotations

import hubbub
import hubbub.client


def test_top_level_exports_are_exactly_the_public_api() -> None:
    assert sorted(hubbub.__all__) == sorted(
        [
            "BadRequest", "Broker", "Clock", "Conflict", "Forbidden", "Hub", "HubbubError",
            "Identity", "ManualClock", "MemoryBroker", "NamespaceOptions", "NotFound",
            "Publication", "RateLimited", "Request", "Settings", "SystemClock", "TokenVerifier",
            "TooLarge", "Unauthorized", "Unavailable", "UnknownType", "__version__",
            "load_settings",
        ]
    )  # fmt: skip
    for name in hubbub.__all__:
        assert hasattr(hubbub, name), name


def test_every_client_export_exists() -> None:
    for name in hubbub.client.__all__:
        assert hasattr(hubbub.client, name), name
    assert {"Client", "Message", "SubscriptionReset", "Backoff"} <= set(hubbub.client.__all__)
