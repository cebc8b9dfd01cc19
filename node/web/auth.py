"""Who may do what: the operator's token, and sessions for the operator and for artisans.

The hub token belongs to the operator. It is made on the first ``craftnet serve`` and
shown once; the hub keeps only its SHA-256, so a copy of the home folder does not give
it away. Scripts send it as a bearer token; a browser posts it once and gets an
*operator session*.

Artisans never see that token: they log in with their key's handle and passphrase.
Their key is decrypted once, kept in this process's memory for the *artisan session*
only, and signs what they publish; it is dropped at logout or when the session ends.
Sessions are cookies (HttpOnly, SameSite=Strict), live in memory, expire, and end when
the hub restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from craftnet.errors import CraftnetError
from craftnet.identity.keys import PrivateKey

TOKEN_PREFIX: Final = "cnt_"
SESSION_COOKIE: Final = "craftnet_session"
SESSION_SECONDS: Final = 12 * 3600  # an operator's session
ARTISAN_SESSION_SECONDS: Final = 4 * 3600  # a key in memory: shorter
MAX_SESSIONS: Final = 1000
MAX_TOKEN_LEN: Final = 200

Role = Literal["operator", "artisan"]


class TokenError(CraftnetError):
    """The token file is missing or damaged."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def make_token() -> tuple[str, str]:
    """A new token and its hash, nothing written yet: ``(token, hash)``."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, _digest(token)


def save_token_hash(path: Path, token_hash: str) -> None:
    """Store a token's hash at ``path`` (replacing any old one) atomically."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("sha256:" + token_hash + "\n")
    partial.replace(path)


def new_token(path: Path) -> str:
    """Make a new token, store its hash at ``path`` (replacing any old one), return it."""
    token, token_hash = make_token()
    save_token_hash(path, token_hash)
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


@dataclass(slots=True)
class Session:
    """One browser's login: the operator's, or an artisan's with their decrypted key."""

    role: Role
    expires: float
    handle: str | None = None
    key: PrivateKey | None = None

    @property
    def did(self) -> str | None:
        """The artisan's did:key (None for the operator)."""
        return self.key.did if self.key is not None else None


class Gate:
    """Checks the operator's token and keeps sessions.

    ``clock`` is injectable so that tests can let a session expire without waiting.
    """

    def __init__(self, token_hash: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._hash = token_hash
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def token_ok(self, token: str) -> bool:
        """Whether ``token`` is the hub's token (constant-time comparison)."""
        if not token or len(token) > MAX_TOKEN_LEN:
            return False
        return hmac.compare_digest(_digest(token), self._hash)

    def open_session(
        self, role: Role = "operator", *, handle: str | None = None, key: PrivateKey | None = None
    ) -> str:
        """Start a session; return its id for the cookie."""
        if (role == "artisan") != (key is not None and handle is not None):
            raise ValueError("an artisan session needs the handle and key; an operator's none")
        now = self._clock()
        self._sessions = {sid: s for sid, s in self._sessions.items() if s.expires > now}
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda sid: self._sessions[sid].expires)
            del self._sessions[oldest]
        sid = secrets.token_urlsafe(32)
        life = ARTISAN_SESSION_SECONDS if role == "artisan" else SESSION_SECONDS
        self._sessions[sid] = Session(role, now + life, handle, key)
        return sid

    def session(self, sid: str | None) -> Session | None:
        """The live session ``sid`` names, or None (an expired one is forgotten, key too)."""
        if not sid:
            return None
        found = self._sessions.get(sid)
        if found is None:
            return None
        if found.expires <= self._clock():
            del self._sessions[sid]
            return None
        return found

    def session_ok(self, sid: str) -> bool:
        """Whether ``sid`` is a live session."""
        return self.session(sid) is not None

    def close_session(self, sid: str) -> None:
        """End a session (logging out); an artisan's key leaves memory with it."""
        self._sessions.pop(sid, None)
