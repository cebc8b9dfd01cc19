"""Search: ranked full-text matches with facets, and a suggestion when a word is misspelt."""

from __future__ import annotations

import asyncio
import functools
from typing import Final

from aiohttp import web

from craftnet.archive.schemas import TYPE_NAME
from craftnet.node.web.api.common import Route, json_response
from craftnet.node.web.errors import bad_request
from craftnet.node.web.http import context, parse_did, query_int, query_str, require_read
from craftnet.node.web.search import SearchResult

SEARCH_FILTERS: Final = ("type", "author", "tag", "material", "licence", "process", "language")
MAX_QUERY: Final = 500


def search_filters(request: web.Request) -> dict[str, str]:
    """The facet filters of a search, each checked as the OpenAPI document describes it."""
    filters = {n: v for n in SEARCH_FILTERS if (v := query_str(request, n)) is not None}
    if "type" in filters and (
        len(filters["type"]) > 64 or not TYPE_NAME.fullmatch(filters["type"])
    ):
        raise bad_request(
            f"{filters['type'][:40]!r} is not a record type like 'design'", "bad-query"
        )
    if "author" in filters:
        parse_did(filters["author"])
    return filters


async def run_search(
    request: web.Request, text: str, filters: dict[str, str], limit: int, offset: int
) -> SearchResult:
    """A search on a worker thread (SQLite ranks without holding the GIL)."""
    ctx = context(request)
    ctx.search.catch_up()  # one count when nothing arrived since; indexes what did
    return await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(ctx.search.search, text, filters, limit=limit, offset=offset)
    )


async def search(request: web.Request) -> web.Response:
    """Ranked full-text search with facet counts."""
    require_read(request)
    text = query_str(request, "q", MAX_QUERY) or ""
    limit = query_int(request, "limit", 20, 1, 100)
    offset = query_int(request, "offset", 0, 0, 10_000)
    filters = search_filters(request)
    result = await run_search(request, text, filters, limit, offset)
    return json_response(
        {
            "query": text,
            "total": result.total,
            "hits": [
                {
                    "cid": hit.cid,
                    "type": hit.type,
                    "author": hit.author,
                    "ts": hit.ts,
                    "title": hit.title,
                    "snippet": hit.snippet,
                    "licence": hit.licence,
                    "process": hit.process,
                }
                for hit in result.hits
            ],
            "facets": result.facets,
            "next_offset": result.next_offset,
            "suggestion": result.suggestion,
        }
    )


ROUTES: Final[list[Route]] = [("GET", "/search", search)]
