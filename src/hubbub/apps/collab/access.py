"""Who may do what with a document: edit, read (receive only) or nothing.

The rule, in order:

1. The server (the API key as `?token=`) and users with the `admin` role edit everything.
2. An access rule the application registered (`Collab.access_rule`) decides, unless it
   returns None.
3. A token with a `collab` claim, `{"<document glob>": "edit" | "read", ...}`, grants
   the best level among the globs the document's name matches, and nothing elsewhere.
4. Otherwise the app's `default_access` ("edit" unless configured: like the default
   channel namespace, any signed-in user may take part).
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from hubbub.core.auth import Identity
from hubbub.errors import Unauthorized

Access = Literal["edit", "read", "none"]
LEVELS: dict[str, int] = {"none": 0, "read": 1, "edit": 2}

AccessRule = Callable[
    [Identity, Mapping[str, Any], str], "Access | None | Awaitable[Access | None]"
]
"""`rule(identity, claims, doc_name)`: a level, or None to leave it to the token and default."""


def claim_access(claims: Mapping[str, Any], doc: str) -> Access | None:
    """The level the token's `collab` claim grants on `doc`; None when there is no claim."""
    grants = claims.get("collab")
    if grants is None:
        return None
    if not isinstance(grants, dict) or not all(
        isinstance(k, str) and v in LEVELS for k, v in grants.items()
    ):
        raise Unauthorized('claim `collab` must map document globs to "edit", "read" or "none"')
    best: Access = "none"
    for pattern, level in grants.items():
        if fnmatch.fnmatchcase(doc, pattern) and LEVELS[level] > LEVELS[best]:
            best = level
    return best


async def decide(
    identity: Identity,
    claims: Mapping[str, Any],
    doc: str,
    rule: AccessRule | None,
    default: Access,
) -> Access:
    """The access of `identity` to `doc` by the rule in the module docstring."""
    if identity.is_admin:
        return "edit"
    if rule is not None:
        decided = rule(identity, claims, doc)
        if inspect.isawaitable(decided):
            decided = await decided
        if decided is not None:
            if decided not in LEVELS:
                raise ValueError(f"an access rule returned {decided!r}")
            return decided
    from_claim = claim_access(claims, doc)
    return from_claim if from_claim is not None else default
