"""JWT authentication (PROTOCOL.md section 3): who a connection or an HTTP caller is."""

from __future__ import annotations

import hmac
import time
from typing import Any

import jwt
import msgspec

from hubbub.errors import Unauthorized
from hubbub.protocol.channels import is_valid_channel, user_channel


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who a caller is and what its token grants.

    `channels` and `publish` are glob patterns of channels beyond the namespace
    defaults; `exp` is the token's expiry in seconds since the epoch, if any.
    The server itself (the API key) is an identity with `is_server` set.
    """

    user_id: str
    channels: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    exp: float | None = None
    is_server: bool = False

    @property
    def is_admin(self) -> bool:
        return self.is_server or "admin" in self.roles


SERVER = Identity(user_id="server", is_server=True, roles=("admin",))


def _strings(value: Any, claim: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise Unauthorized(f"claim `{claim}` must be a list of strings")


class TokenVerifier:
    """Checks user tokens (HS256 secret, or RS256/ES256 public key) and the API key."""

    def __init__(
        self, *, secret: str | None, public_key: str | None = None, api_key: str | None = None
    ) -> None:
        if not secret and not public_key:
            raise ValueError("a JWT secret or a public key is required")
        self._secret = secret
        self._public_key = public_key
        self._api_key = api_key

    def verify(self, token: str) -> Identity:
        """The identity a user token proves; raises `Unauthorized` with the reason."""
        key: str
        if self._public_key:
            key, algorithms = self._public_key, ["RS256", "ES256"]
        else:
            key, algorithms = self._secret or "", ["HS256"]
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                options={"require": ["sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("claim `sub` must be a non-empty string")
        if not is_valid_channel(user_channel(sub)):
            # The user's own channel is `user:<sub>`: it must be a channel name.
            raise Unauthorized("claim `sub` may hold only letters, digits and _ . @ -")
        exp = claims.get("exp")
        return Identity(
            user_id=sub,
            channels=_strings(claims.get("channels"), "channels"),
            publish=_strings(claims.get("publish"), "publish"),
            roles=_strings(claims.get("roles"), "roles"),
            exp=float(exp) if isinstance(exp, int | float) else None,
        )

    def is_api_key(self, token: str) -> bool:
        return bool(self._api_key) and hmac.compare_digest(
            token.encode(), (self._api_key or "").encode()
        )

    def verify_bearer(self, token: str) -> Identity:
        """The identity of an HTTP caller: the server for the API key, else a user token."""
        if self.is_api_key(token):
            return SERVER
        return self.verify(token)

    def issue(self, user_id: str, *, ttl: float = 24 * 3600.0, **claims: Any) -> str:
        """A signed HS256 token for `user_id` (development tokens and tests)."""
        if not self._secret:
            raise RuntimeError("issuing tokens needs a JWT secret")
        body = {"sub": user_id, "exp": int(time.time() + ttl), **claims}
        return jwt.encode(body, self._secret, algorithm="HS256")
