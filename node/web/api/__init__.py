"""The JSON API under ``/api/v1/``, one module per resource.

Handlers parse and check their input, ask :mod:`craftnet.node.web.queries` or the archive,
and raise; the error middleware (:mod:`craftnet.node.web.app`) turns every exception into
``{"error": {code, message}}``. Every route is described in
:mod:`craftnet.node.web.openapi`, and a test fails when the two disagree.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from craftnet.node.web.api import (
    artisans,
    bundles,
    documents,
    files,
    keys,
    meta,
    records,
    search,
    session,
)
from craftnet.node.web.api.common import PREFIX, Route

ROUTES: Final[list[Route]] = [
    *meta.ROUTES,
    *records.ROUTES,
    *artisans.ROUTES,
    *search.ROUTES,
    *documents.ROUTES,
    *keys.ROUTES,
    *files.ROUTES,
    *session.ROUTES,
    *bundles.ROUTES,
]


def add_routes(app: web.Application) -> None:
    """Register every API route under ``/api/v1``."""
    for method, path, handler in ROUTES:
        app.router.add_route(method, PREFIX + path, handler)
