"""The aiohttp application: the API, the pages, the static files, and the rules on top.

Middlewares apply to every request: a query-size limit, security headers, and one
error handler that turns any exception into the API's JSON error (or an HTML page for
the web UI) without ever showing a traceback to a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

import aiohttp_jinja2
import jinja2
from aiohttp import web

from craftnet.errors import CraftnetError
from craftnet.node import housekeeping
from craftnet.node.web import api, assets, ui
from craftnet.node.web.api.common import Handler
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError, from_exception
from craftnet.node.web.graph import short_did
from craftnet.node.web.http import CTX, MAX_JSON_BYTES, MAX_QUERY_BYTES

log = logging.getLogger("craftnet.node.web")

CATCH_UP_SECONDS: Final = 5.0
# Scripts only from the hub itself, plus the one inline import map the 3D viewer needs
# (allowed by its hash, so no other inline script can run).
PAGE_CSP: Final = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    f"script-src 'self' '{assets.IMPORT_MAP_HASH}'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HTTP_CODES: Final = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    414: "uri-too-long",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _error_response(
    request: web.Request, error: ApiError, headers: dict[str, str] | None = None
) -> web.Response:
    headers = dict(headers or {})
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="craftnet"'
    if error.status == 429 and "retry_after" in error.extra:
        headers["Retry-After"] = str(error.extra["retry_after"])
    if error.status == 416 and "size" in error.extra:
        headers["Content-Range"] = f"bytes */{error.extra['size']}"
    if _is_api(request):
        return web.json_response(error.body(), status=error.status, headers=headers)
    return ui.error_page(request, error)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Limits, headers and the one error shape."""
    try:
        if len(request.query_string) > MAX_QUERY_BYTES:
            raise ApiError(414, "uri-too-long", f"the query is longer than {MAX_QUERY_BYTES} bytes")
        response = await handler(request)
    except ApiError as exc:
        response = _error_response(request, exc)
    except CraftnetError as exc:
        error = from_exception(exc)
        if error.status >= 500:
            log.error("error serving %s %s", request.method, request.path, exc_info=exc)
        response = _error_response(request, error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "error")
        message = exc.reason if exc.status != 413 else "the request body is too large"
        if exc.status == 404:
            message = f"nothing at {request.path[:200]}"
        kept = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status == 405 and kept:
            message = f"{request.method} is not allowed here; use {kept['Allow']}"
        response = _error_response(request, ApiError(exc.status, code, message), kept)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        response = _error_response(
            request, ApiError(500, "internal", "internal error; the hub's log has the details")
        )
    if response.status >= 400 and not request.content.at_eof():
        # The body was refused unread (too large, no token): do not keep reading it.
        response.force_close()
    if not _is_api(request) or response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


async def _keep_index(app: web.Application) -> AsyncIterator[None]:
    """Index records that arrived by other paths (sync, bundles, the CLI) every few seconds."""
    ctx = app[CTX]

    async def loop() -> None:
        while True:
            await asyncio.sleep(CATCH_UP_SECONDS)
            try:
                ctx.search.catch_up()
            except Exception:  # keep serving; the next round tries again
                log.exception("search index catch-up failed")

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _housekeeping(app: web.Application) -> AsyncIterator[None]:
    """Expire unfinished bundle work at start and every hour (node.housekeeping), in a
    worker thread: a round over a big held table must not stall requests."""
    ctx = app[CTX]
    current: asyncio.Future[object] | None = None

    def round_() -> object:
        try:
            return housekeeping.tidy(ctx.config, ctx.store)
        except Exception:  # keep serving; the next round tries again
            log.exception("housekeeping (unfinished imports) failed")
            return None

    async def loop() -> None:
        nonlocal current
        while True:
            current = asyncio.ensure_future(asyncio.to_thread(round_))
            await asyncio.shield(current)
            await asyncio.sleep(housekeeping.INTERVAL)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if current is not None:
        await current  # a round under way ends before the store is closed


def create_app(ctx: NodeContext) -> web.Application:
    """The web application of one hub (call ``ctx.search.catch_up()`` before serving)."""
    app = web.Application(middlewares=[guard], client_max_size=MAX_JSON_BYTES)
    app[CTX] = ctx
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("craftnet.node.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.ChainableUndefined,  # optional record fields render empty
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # What macros use wherever they are imported from.
    env.globals.update(
        short_did=short_did,
        viewer_ok=assets.viewer_available(),
        import_map=assets.IMPORT_MAP,
    )
    api.add_routes(app)
    ui.add_routes(app)
    assets.add_routes(app)
    app.cleanup_ctx.append(_keep_index)
    app.cleanup_ctx.append(_housekeeping)
    return app
