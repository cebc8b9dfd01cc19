"""The hub itself: this API's description, status, peers, and the licences it knows."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from craftnet.archive.licences import KNOWN_LICENCES, validate_licence
from craftnet.archive.schemas import KNOWN_PROCESSES
from craftnet.node.web.api.common import Route, json_response
from craftnet.node.web.errors import bad_request
from craftnet.node.web.http import caller, context, parse_cid, query_str, require_read
from craftnet.node.web.openapi import openapi_document
from craftnet.node.web.queries import licence_findings

MAX_PARENTS: Final = 64


async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of this API."""
    return json_response(openapi_document())


async def get_status(request: web.Request) -> web.Response:
    """The hub: its key, what it holds, whether it syncs, who is asking."""
    require_read(request)
    ctx = context(request)
    counts = ctx.type_counts()
    who = caller(request)
    return json_response(
        {
            "hub": ctx.hub_did,
            "demo": ctx.demo,
            "records": sum(counts.values()),
            "by_type": counts,
            "searchable": ctx.search.indexed,
            "network": ctx.peers.status(),
            "reads_need_token": ctx.config.require_token_for_reads,
            "logged_in": who.known,
            "artisan": who.artisan.handle if who.artisan else None,
            "operator": who.operator,
            "walk_in_keys": ctx.policy.walk_in_keys,
        }
    )


async def get_peers(request: web.Request) -> web.Response:
    """Peers and sync status (from the node's networking part, if it runs)."""
    require_read(request)
    return json_response(context(request).peers.status())


async def list_licences(request: web.Request) -> web.Response:
    """The licences this hub knows, and what each allows."""
    return json_response(
        {
            "licences": [
                {
                    "spdx": lic.spdx,
                    "name": lic.name,
                    "share_alike": lic.share_alike,
                    "non_commercial": lic.non_commercial,
                    "no_derivatives": lic.no_derivatives,
                }
                for lic in KNOWN_LICENCES.values()
            ],
            "processes": list(KNOWN_PROCESSES),
        }
    )


async def check_licence(request: web.Request) -> web.Response:
    """What to tell the author of a derivative before publishing it."""
    require_read(request)
    ctx = context(request)
    licence = query_str(request, "licence", 80)
    if licence is None:
        raise bad_request("give ?licence=<SPDX id>", "bad-query")
    validate_licence(licence)
    parents_raw = request.query.getall("parent", [])
    if len(parents_raw) > MAX_PARENTS:
        raise bad_request(f"at most {MAX_PARENTS} parents", "bad-query")
    parents = [parse_cid(p) for p in parents_raw if p]  # an empty value: no parent
    return json_response({"licence": licence, "warnings": licence_findings(ctx, licence, parents)})


ROUTES: Final[list[Route]] = [
    ("GET", "/openapi.json", get_openapi),
    ("GET", "/status", get_status),
    ("GET", "/peers", get_peers),
    ("GET", "/licences", list_licences),
    ("GET", "/licences/check", check_licence),
]
