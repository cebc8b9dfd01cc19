"""Artisans: anyone's did:key, with their work and the attestations about them."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from craftnet.node.web.api.common import Route, json_response
from craftnet.node.web.http import context, parse_did, query_int, require_read
from craftnet.node.web.jsonable import record_json
from craftnet.node.web.queries import artisan_profile


async def get_artisan(request: web.Request) -> web.Response:
    """An artisan: their recent work and the attestations about them (404 if unknown)."""
    require_read(request)
    did = parse_did(request.match_info["did"])
    limit = query_int(request, "limit", 50, 1, 200)
    profile = artisan_profile(context(request), did, limit)
    return json_response(
        {
            "did": did,
            "handle": profile.handle,
            "records": [record_json(r) for r in profile.works],
            "cursor": profile.cursor,
            "attestations": [record_json(r) for r in profile.attestations],
        }
    )


ROUTES: Final[list[Route]] = [("GET", "/artisans/{did}", get_artisan)]
