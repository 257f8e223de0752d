"""Web Push pieces without a network: VAPID keys and headers, aes128gcm, payload sizes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import msgspec
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hubbub.apps.notify.fallback import MAX_PUSH_PAYLOAD, email_text, push_payload
from hubbub.apps.notify.providers import PushSubscription
from hubbub.apps.notify.webpush import (
    WebPushProvider,
    b64url,
    encrypt,
    load_vapid_key,
    parse_private_key,
    public_key_of,
    unb64url,
)
from hubbub.config import Settings
from tests.integration.notify_services import Browser


def test_a_message_encrypted_for_a_browser_is_read_by_that_browser_only() -> None:
    browser, stranger = Browser("https://push.example/1"), Browser("https://push.example/2")
    keys = browser.subscription()["keys"]
    body = encrypt(b'{"hello":"world"}', PushSubscription(browser.endpoint, **keys))
    assert browser.decrypt(body) == b'{"hello":"world"}'
    stranger.key = ec.generate_private_key(ec.SECP256R1())
    stranger.auth = browser.auth
    with pytest.raises(InvalidTag):
        stranger.decrypt(body)
    # A fresh key and salt each time: the same message never looks the same twice.
    assert encrypt(b"x", PushSubscription(browser.endpoint, **keys)) != encrypt(
        b"x", PushSubscription(browser.endpoint, **keys)
    )


def test_the_vapid_header_is_an_es256_jwt_for_the_push_services_origin() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    provider = WebPushProvider(key, subject="mailto:ops@example.com")
    value = provider.authorization("https://fcm.example.com:8443/wp/abc?x=1")
    scheme, _, rest = value.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    assert scheme == "vapid" and fields["k"] == provider.public_key == public_key_of(key)
    claims = jwt.decode(
        fields["t"], key.public_key(), algorithms=["ES256"], audience="https://fcm.example.com:8443"
    )
    assert claims["sub"] == "mailto:ops@example.com"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600


def test_a_vapid_key_is_read_as_pem_or_base64url_and_kept_in_development(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    scalar = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert public_key_of(parse_private_key(scalar)) == public_key_of(key)
    assert public_key_of(parse_private_key(pem)) == public_key_of(key)
    with pytest.raises(ValueError):
        parse_private_key(b64url(b"short"))

    dev = Settings(data_dir=str(tmp_path), dev=True)
    made = load_vapid_key(dev)
    assert made is not None and (tmp_path / "vapid-private.pem").stat().st_mode & 0o777 == 0o600
    again = load_vapid_key(dev)
    assert again is not None and public_key_of(again) == public_key_of(made)
    assert load_vapid_key(Settings(data_dir=str(tmp_path / "prod"), dev=False)) is None
    assert len(unb64url(public_key_of(made))) == 65


def row(**fields: Any) -> dict[str, Any]:
    base = {
        "id": 7,
        "type": "t",
        "priority": "high",
        "title": "Title",
        "body": "Body",
        "data": {"k": "v"},
        "created_at": 1,
    }
    return base | fields


def test_a_push_payload_drops_data_then_cuts_the_body_to_fit_one_record() -> None:
    small = msgspec.json.decode(push_payload(row()))  # type: ignore[arg-type]
    assert small["data"] == {"k": "v"} and small["id"] == "7"
    big = push_payload(row(data={"blob": "x" * 5000}, body="y" * 9000))  # type: ignore[arg-type]
    assert len(big) <= MAX_PUSH_PAYLOAD
    decoded = msgspec.json.decode(big)
    assert decoded["data"] == {} and decoded["title"] == "Title"
    assert decoded["body"].startswith("yyy") and decoded["body"].endswith("…")


def test_an_email_names_the_title_body_and_where_to_read_it() -> None:
    text = email_text(row(), "https://hub.example.com/")  # type: ignore[arg-type]
    assert text == "Title\n\nBody\n\nOpen: https://hub.example.com/demo/notifications\n"
    assert email_text(row(body=""), None) == "Title\n"  # type: ignore[arg-type]
