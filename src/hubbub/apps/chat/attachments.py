"""Attachment files: checked by size and by what their bytes are, kept under the data directory.

An upload names its content type; the bytes must agree (a PNG starts like a PNG,
text is UTF-8 without NUL bytes), so a file cannot pass as a type it is not. Files
are written to a temporary name, flushed to disk, then renamed: a crash leaves either
the whole file or none. Downloads go out with `X-Content-Type-Options: nosniff` and a
sandboxing Content-Security-Policy, and only images display inline.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from hubbub.errors import BadRequest, TooLarge


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda b: b.startswith((b"GIF87a", b"GIF89a")),
    "image/webp": lambda b: b.startswith(b"RIFF") and b[8:12] == b"WEBP",
    "application/pdf": lambda b: b.startswith(b"%PDF-"),
    "text/plain": _is_text,
}
"""The content types chat accepts, each with the check its bytes must pass."""

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\\"]+")
NAME_MAX = 255


def clean_name(name: str) -> str:
    """A file name safe to store and to put in a Content-Disposition header."""
    cleaned = _UNSAFE_NAME.sub("_", name).strip(" .")
    return cleaned[:NAME_MAX] or "file"


def check_upload(data: bytes, content_type: str, limit: int) -> str:
    """The accepted content type of an upload, or the reason it is refused."""
    if not data:
        raise BadRequest("the file is empty")
    if len(data) > limit:
        raise TooLarge(f"attachments may be at most {limit} bytes")
    base = content_type.split(";", 1)[0].strip().lower()
    check = SIGNATURES.get(base)
    if check is None:
        allowed = ", ".join(sorted(SIGNATURES))
        raise BadRequest(f"content type {base or 'missing'!r} is not allowed (allowed: {allowed})")
    if not check(data):
        raise BadRequest(f"the file is not {base}")
    return base


class AttachmentFiles:
    """The directory where attachment bytes live, one file per attachment id."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @staticmethod
    def new_id() -> str:
        return "a" + secrets.token_hex(12)

    def _path(self, attachment_id: str) -> Path:
        if not re.fullmatch(r"a[0-9a-f]{24}", attachment_id):
            raise BadRequest("not an attachment id")
        return self.root / attachment_id[1:3] / attachment_id

    async def write(self, attachment_id: str, data: bytes) -> str:
        """Store `data` durably; returns its sha256."""
        path = self._path(attachment_id)
        await asyncio.to_thread(_write_durably, path, data)
        return hashlib.sha256(data).hexdigest()

    async def read(self, attachment_id: str) -> bytes:
        return await asyncio.to_thread(self._path(attachment_id).read_bytes)

    def download_headers(self, name: str, content_type: str) -> tuple[tuple[str, str], ...]:
        disposition = "inline" if content_type.startswith("image/") else "attachment"
        safe = clean_name(name)
        plain = safe.encode("ascii", "replace").decode().replace("?", "_")
        utf8 = urllib.parse.quote(safe, safe="")
        return (
            (
                "Content-Disposition",
                f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{utf8}",
            ),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", "sandbox; default-src 'none'"),
            ("Cache-Control", "private, max-age=86400"),
        )


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".part")
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
