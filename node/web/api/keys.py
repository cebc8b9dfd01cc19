"""Artisans' keys on this hub: list, create, import, export, and how strong a passphrase is.

Creating or importing a key is the operator's to allow: always with the hub's token (or
an operator's session), and for walk-in artisans only when the operator's policy says so.
A walk-in who makes or brings a key is logged in as that artisan at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from craftnet.identity.keys import PrivateKey
from craftnet.identity.keystore import ARTISAN_PREFIX, check_name
from craftnet.node.web.api.common import (
    MAX_PASSPHRASE,
    Route,
    check_handle,
    json_response,
)
from craftnet.node.web.api.session import start_session
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError
from craftnet.node.web.http import (
    Caller,
    context,
    field,
    optional_write,
    read_json,
    require_read,
    require_write,
)
from craftnet.node.web.queries import artisan_keys, handle_of
from craftnet.node.web.strength import rate


def strong_passphrase(data: dict[str, Any], name: str, handle: str) -> str:
    """The passphrase field ``name``, refused (422) if it is easy to guess."""
    value = str(field(data, name, str, max_len=MAX_PASSPHRASE))
    verdict = rate(value, words=(handle, "craftnet"))
    if not verdict.ok:
        raise ApiError(422, "weak-passphrase", verdict.hint, score=verdict.score)
    return value


def _may_add_keys(ctx: NodeContext, who: Caller) -> None:
    if who.operator or ctx.policy.walk_in_keys:
        return
    raise ApiError(
        403 if who.known else 401,
        "operator-only",
        "on this hub only the operator adds artisans' keys; ask them, or log in with "
        "your handle and passphrase if you have a key here",
    )


def _rate_limited(request: web.Request, ctx: NodeContext, who: Caller) -> None:
    """A walk-in takes a token before the hub runs scrypt for them (429 without one)."""
    if who.operator:
        return
    wait = ctx.walk_ins.take(request.remote or "?")
    if wait is not None:
        raise ApiError(
            429,
            "too-many-requests",
            f"too many new keys from here or on this hub just now; try again in {wait} s, "
            "or ask the hub's operator",
            retry_after=wait,
        )


def _free_name(ctx: NodeContext, handle: str) -> str:
    name = check_name(ARTISAN_PREFIX + handle)
    if ctx.keystore.has(name):
        raise ApiError(409, "exists", f"the handle {handle!r} is taken on this hub")
    return name


def _answer(
    ctx: NodeContext, who: Caller, handle: str, key: PrivateKey, status: int
) -> web.Response:
    response = json_response({"handle": handle, "did": key.did}, status=status)
    if not who.operator:
        start_session(ctx, response, "artisan", handle=handle, key=key)
    return response


async def list_keys(request: web.Request) -> web.Response:
    """The artisans who keep a key on this hub (handles and did:keys; no secrets)."""
    require_read(request)
    ctx = context(request)
    return json_response(
        {
            "artisans": [
                {"handle": handle_of(i), "did": i.did, "created": i.created}
                for i in artisan_keys(ctx.keystore)
            ]
        }
    )


@dataclass(frozen=True, slots=True)
class _NewKey:
    """A request to add an artisan's key, checked: who asks, for which free handle."""

    ctx: NodeContext
    who: Caller
    data: dict[str, Any]
    handle: str
    name: str
    passphrase: str


async def _new_key(request: web.Request) -> _NewKey:
    ctx = context(request)
    who = optional_write(request)
    _may_add_keys(ctx, who)
    data = await read_json(request)
    handle = check_handle(data.get("handle"))
    name = _free_name(ctx, handle)  # a taken handle is said before a weak passphrase
    passphrase = strong_passphrase(data, "passphrase", handle)
    return _NewKey(ctx, who, data, handle, name, passphrase)


async def create_key(request: web.Request) -> web.Response:
    """Make an artisan's own key, kept here encrypted with their passphrase."""
    new = await _new_key(request)
    ctx, who, handle, name, passphrase = new.ctx, new.who, new.handle, new.name, new.passphrase
    _rate_limited(request, ctx, who)
    loop = asyncio.get_running_loop()
    key = await loop.run_in_executor(None, ctx.keystore.create, name, passphrase)
    return _answer(ctx, who, handle, key, 201)


async def import_key(request: web.Request) -> web.Response:
    """Bring an artisan's exported key from another hub."""
    new = await _new_key(request)
    ctx, who, data, handle, name = new.ctx, new.who, new.data, new.handle, new.name
    passphrase = new.passphrase
    key_file = field(data, "key_file", str, max_len=16 * 1024)
    export_passphrase = field(data, "export_passphrase", str, max_len=MAX_PASSPHRASE)
    _rate_limited(request, ctx, who)
    loop = asyncio.get_running_loop()
    key = await loop.run_in_executor(
        None,
        lambda: ctx.keystore.import_key(
            name, key_file.encode(), passphrase, export_passphrase=export_passphrase
        ),
    )
    return _answer(ctx, who, handle, key, 201)


async def export_key(request: web.Request) -> web.Response:
    """An artisan's key, encrypted under an export passphrase, to carry to another hub."""
    require_write(request)
    ctx = context(request)
    handle = check_handle(request.match_info["handle"])
    data = await read_json(request)
    passphrase = field(data, "passphrase", str, max_len=MAX_PASSPHRASE)
    export_passphrase = strong_passphrase(data, "export_passphrase", handle)
    name = ARTISAN_PREFIX + handle
    if not ctx.keystore.has(name):
        raise ApiError(404, "not-found", f"no artisan {handle!r} on this hub")
    loop = asyncio.get_running_loop()
    blob = await loop.run_in_executor(
        None, ctx.keystore.export, name, passphrase, export_passphrase
    )
    return json_response({"handle": handle, "key_file": blob.decode()})


async def passphrase_strength(request: web.Request) -> web.Response:
    """How hard a passphrase would be to guess, with a hint (nothing is stored)."""
    data = await read_json(request)
    passphrase = field(data, "passphrase", str, max_len=MAX_PASSPHRASE)
    handle = field(data, "handle", str, required=False, max_len=40) or ""
    verdict = rate(passphrase, words=(handle, "craftnet"))
    return json_response({"score": verdict.score, "ok": verdict.ok, "hint": verdict.hint})


ROUTES: Final[list[Route]] = [
    ("GET", "/keys", list_keys),
    ("POST", "/keys", create_key),
    ("POST", "/keys/import", import_key),
    ("POST", "/keys/strength", passphrase_strength),
    ("POST", "/keys/{handle}/export", export_key),
]
