"""Running the web app until the hub is told to stop (SIGINT/SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from aiohttp import web

from craftnet.node.web.app import create_app
from craftnet.node.web.context import NodeContext
from craftnet.node.web.http import MAX_REQUEST_LINE


async def serve_until_stopped(
    ctx: NodeContext,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> None:
    """Serve on ``host:port`` until ``stop`` is set or a SIGINT/SIGTERM arrives."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not on the main thread (tests) or no signals here: stop comes from the event.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    ctx.search.catch_up()
    runner = web.AppRunner(
        create_app(ctx),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=5.0,
        # Long enough for any query the API allows, so that one too long gets the API's
        # JSON 414 rather than the HTTP parser's plain-text 400.
        max_line_size=MAX_REQUEST_LINE,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        on_ready(f"http://{shown}:{bound[1]}/")
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await runner.cleanup()


def run(ctx: NodeContext, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve in this thread until interrupted, then close the context cleanly."""
    try:
        asyncio.run(serve_until_stopped(ctx, host, port, on_ready))
    finally:
        ctx.close()
