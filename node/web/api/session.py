"""Browser sessions: an artisan logs in with handle and passphrase, the operator with the
hub's token; logging out drops the session (and the artisan's key with it)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from craftnet.identity.errors import WrongPassphrase
from craftnet.identity.keys import PrivateKey
from craftnet.node.web.api.common import (
    MAX_PASSPHRASE,
    Route,
    check_handle,
    json_response,
    load_key,
)
from craftnet.node.web.auth import (
    ARTISAN_SESSION_SECONDS,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Role,
)
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError
from craftnet.node.web.http import context, field, read_json, require_operator


def start_session(
    ctx: NodeContext,
    response: web.StreamResponse,
    role: Role,
    *,
    handle: str | None = None,
    key: PrivateKey | None = None,
) -> None:
    """Open a session and set its cookie on ``response``."""
    response.set_cookie(
        SESSION_COOKIE,
        ctx.gate.open_session(role, handle=handle, key=key),
        httponly=True,
        samesite="Strict",
        max_age=ARTISAN_SESSION_SECONDS if role == "artisan" else SESSION_SECONDS,
        path="/",
    )


async def login(request: web.Request) -> web.Response:
    """Log in: ``{"handle", "passphrase"}`` as an artisan, ``{"token"}`` as the operator."""
    ctx = context(request)
    data = await read_json(request)
    old = request.cookies.get(SESSION_COOKIE)
    if "token" in data:
        token = field(data, "token", str, max_len=200)
        if not ctx.gate.token_ok(token):
            raise ApiError(401, "unauthorized", "wrong token: that is not this hub's API token")
        response = json_response({"logged_in": True, "role": "operator", "handle": None})
        start_session(ctx, response, "operator")
    else:
        handle = check_handle(field(data, "handle", str, max_len=40))
        passphrase = field(data, "passphrase", str, max_len=MAX_PASSPHRASE)
        try:
            key = await load_key(ctx, handle, passphrase)
        except WrongPassphrase:
            raise ApiError(
                401, "wrong-passphrase", f"wrong passphrase for {handle!r}; try again"
            ) from None
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise ApiError(
                401, "unknown-artisan", f"no artisan {handle!r} has a key on this hub"
            ) from None
        response = json_response({"logged_in": True, "role": "artisan", "handle": handle})
        start_session(ctx, response, "artisan", handle=handle, key=key)
    if old:
        ctx.gate.close_session(old)  # a new login replaces the old session
    return response


async def logout(request: web.Request) -> web.Response:
    """End the browser session."""
    ctx = context(request)
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        ctx.gate.close_session(sid)
    response = json_response({"logged_in": False})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def get_policy(request: web.Request) -> web.Response:
    """What the operator allows: whether walk-in artisans may add keys."""
    return json_response({"walk_in_keys": context(request).policy.walk_in_keys})


async def put_policy(request: web.Request) -> web.Response:
    """Change what the operator allows (the operator only)."""
    require_operator(request)
    ctx = context(request)
    data = await read_json(request)
    ctx.policy.set_walk_in_keys(field(data, "walk_in_keys", bool))
    return json_response({"walk_in_keys": ctx.policy.walk_in_keys})


ROUTES: Final[list[Route]] = [
    ("POST", "/session", login),
    ("DELETE", "/session", logout),
    ("GET", "/policy", get_policy),
    ("PUT", "/policy", put_policy),
]
