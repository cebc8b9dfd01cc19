"""Who may write (and, if the hub says so, read): one bearer token, or a session from it.

The token is made once (``craftnet serve`` makes it on first start and prints it once);
the hub keeps only its SHA-256, so a copy of the home folder does not give it away.
A browser logs in by posting the token once and gets a session cookie (HttpOnly,
SameSite=Strict); sessions live in memory and end when the hub restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Final

from craftnet.errors import CraftnetError

TOKEN_PREFIX: Final = "cnt_"
SESSION_COOKIE: Final = "craftnet_session"
SESSION_SECONDS: Final = 12 * 3600
MAX_SESSIONS: Final = 1000
MAX_TOKEN_LEN: Final = 200


class TokenError(CraftnetError):
    """The token file is missing or damaged."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token(path: Path) -> str:
    """Make a new token, store its hash at ``path`` (replacing any old one), return it."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("sha256:" + _digest(token) + "\n")
    partial.replace(path)
    return token


def ensure_token(path: Path) -> str | None:
    """Make a token if there is none; return it (to show once), or None if one existed."""
    return None if path.exists() else new_token(path)


def load_token_hash(path: Path) -> str:
    """The stored hash of the hub's token."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenError(f"cannot read the API token hash {path}: {exc}") from exc
    kind, _, value = text.partition(":")
    if kind != "sha256" or len(value) != 64:
        raise TokenError(f"{path} is damaged; make a new token with 'craftnet serve --new-token'")
    return value


class Gate:
    """Checks tokens and keeps sessions."""

    def __init__(self, token_hash: str) -> None:
        self._hash = token_hash
        self._sessions: dict[str, float] = {}

    def token_ok(self, token: str) -> bool:
        """Whether ``token`` is the hub's token (constant-time comparison)."""
        if not token or len(token) > MAX_TOKEN_LEN:
            return False
        return hmac.compare_digest(_digest(token), self._hash)

    def open_session(self) -> str:
        """Start a session; return its id for the cookie."""
        now = time.monotonic()
        self._sessions = {sid: end for sid, end in self._sessions.items() if end > now}
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=self._sessions.__getitem__)
            del self._sessions[oldest]
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = now + SESSION_SECONDS
        return sid

    def session_ok(self, sid: str) -> bool:
        """Whether ``sid`` is a live session."""
        end = self._sessions.get(sid)
        if end is None:
            return False
        if end < time.monotonic():
            del self._sessions[sid]
            return False
        return True

    def close_session(self, sid: str) -> None:
        """End a session (logging out)."""
        self._sessions.pop(sid, None)
