"""What the API's resource modules share: the prefix, JSON answers, signing keys."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from craftnet.identity.keys import PrivateKey
from craftnet.identity.keystore import ARTISAN_PREFIX
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError
from craftnet.node.web.http import Caller, field

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]

PREFIX: Final = "/api/v1"
HANDLE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
MAX_PASSPHRASE: Final = 1024


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response with the API's content type."""
    return web.json_response(data, status=status, headers=headers)


def etag_match(request: web.Request, etag: str) -> bool:
    """Whether the request's If-None-Match names ``etag`` (or ``*``)."""
    wanted = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, "*") for tag in wanted.split(","))


def check_handle(value: Any) -> str:
    """An artisan handle: 1-40 lower-case letters, digits and dashes."""
    if not isinstance(value, str) or not HANDLE.fullmatch(value):
        raise ApiError(
            422,
            "bad-handle",
            "an artisan handle is 1-40 lower-case letters, digits and dashes, like 'amaia'",
        )
    return value


async def load_key(ctx: NodeContext, handle: str, passphrase: str) -> PrivateKey:
    """An artisan's key decrypted with their passphrase (off the event loop: scrypt)."""
    name = ARTISAN_PREFIX + handle
    if not ctx.keystore.has(name):
        raise ApiError(
            404, "not-found", f"no artisan {handle!r} on this hub; create or import a key"
        )
    loop = asyncio.get_running_loop()
    key: PrivateKey = await loop.run_in_executor(None, ctx.keystore.load, name, passphrase)
    return key


async def signing_key(ctx: NodeContext, who: Caller, data: dict[str, Any]) -> PrivateKey:
    """The key that signs this write: the logged-in artisan's, or the one ``artisan`` and
    ``passphrase`` in the body name (scripts with the operator's token do that).

    Naming neither without an artisan's session is a missing credential (401): the
    operator's token says who may write, not whose key signs."""
    if who.artisan is None and "artisan" not in data and "passphrase" not in data:
        raise ApiError(
            401,
            "unauthorized",
            "a record is signed by an artisan: log in as one, or name 'artisan' and "
            "'passphrase'",
        )
    if "artisan" in data or "passphrase" in data or who.artisan is None:
        handle = check_handle(field(data, "artisan", str, max_len=40))
        passphrase = field(data, "passphrase", str, max_len=MAX_PASSPHRASE)
        return await load_key(ctx, handle, passphrase)
    if who.artisan.key is None:  # Gate.open_session never makes such a session
        raise ApiError(401, "unauthorized", "this session holds no key; log in again")
    return who.artisan.key
