"""Files: streamed uploads with a size limit, downloads with Range, drawings of models.

A download's ETag is the file's CID, so a browser or another hub that has the bytes
never fetches them twice. Files are served with a sandboxing Content-Security-Policy and
``nosniff``: an SVG someone published must not run scripts in the hub's origin (where
the session cookie lives) when opened directly.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, BinaryIO, Final, cast

from aiohttp import web

from craftnet.archive import files
from craftnet.archive.cid import Cid
from craftnet.archive.store import Store
from craftnet.node.web.api.common import Route
from craftnet.node.web.errors import ApiError, bad_request
from craftnet.node.web.http import (
    FILE_NAME,
    context,
    parse_cid,
    query_str,
    require_read,
    require_write,
)
from craftnet.node.web.preview import PreviewError, file_card_svg, stl_to_svg
from craftnet.node.web.queries import content_type, file_meta, missing_chunks

SPOOL_IN_MEMORY: Final = 8 * 2**20
READ_SIZE: Final = 256 * 1024
MAX_NAME: Final = 200
MAX_PREVIEW_SOURCE: Final = 64 * 2**20
FILE_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


def check_file_name(name: str | None) -> str:
    """A plain file name: no folders, no leading dot or space, no control characters."""
    if name is None:
        raise bad_request("give the file's name: POST /api/v1/files?name=lamp.stl", "bad-file-name")
    if not FILE_NAME.fullmatch(name):
        raise bad_request(
            f"{name[:80]!r} is not a plain file name (no folders, leading dots or spaces, "
            "or control characters)",
            "bad-file-name",
        )
    return name


# -- the archive side ------------------------------------------------------------------


def iter_range(store: Store, cid: Cid, start: int, end: int) -> Iterator[bytes]:
    """The bytes ``start..end`` (inclusive) of a file, chunk by chunk, each chunk checked
    against its CID (on helper threads, a few chunks ahead); chunks before ``start`` are
    skipped without being read."""
    info = files.file_info(store, cid)
    if start == 0 and end >= info.size - 1:
        yield from files.iter_chunks(store, files.iter_chunk_refs(store, info))
        return
    refs = iter(files.iter_chunk_refs(store, info))
    position = 0  # where the first chunk of the range starts in the file
    for first in refs:
        if position + first.size > start:
            break
        position += first.size
    else:
        return

    def overlapping(at: int) -> Iterator[files.ChunkRef]:
        for ref in itertools.chain((first,), refs):
            if at > end:
                return
            yield ref
            at += ref.size

    for data in files.iter_chunks(store, overlapping(position)):
        lo = max(0, start - position)
        hi = min(len(data), end + 1 - position)
        yield data[lo:hi]
        position += len(data)


# -- handlers ---------------------------------------------------------------------------


async def upload(request: web.Request) -> web.Response:
    """Store the request body as a file (streamed; refused past the hub's size limit)."""
    require_write(request)
    ctx = context(request)
    name = check_file_name(query_str(request, "name", MAX_NAME))
    limit = ctx.config.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too-large", f"files may be at most {limit} bytes on this hub")
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        size = 0
        while True:
            chunk = await request.content.read(READ_SIZE)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too-large", f"files may be at most {limit} bytes on this hub")
            spool.write(chunk)
        if size == 0:
            raise bad_request("the file is empty", "empty-file")
        spool.seek(0)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            None,
            lambda: files.add_file(
                ctx.store,
                cast(BinaryIO, spool),
                name=name,
                media_type=content_type(name).split(";")[0],
            ),
        )
    cid: Cid = result.cid
    return web.json_response(
        {"cid": str(cid), "name": name, "size": size, "content_type": content_type(name)},
        status=201,
        headers={"Location": f"/api/v1/files/{cid}"},
    )


async def info(request: web.Request) -> web.Response:
    """A file's name, size and media type."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    return web.json_response(file_meta(ctx.store, cid))


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` range as inclusive bounds; None to send the whole file."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # several ranges or another unit: RFC 9110 lets us send it all
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                raise ValueError
            return max(0, size - length), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        raise ApiError(416, "range-not-satisfiable", f"the file has {size} bytes", size=size)
    if start > end:
        return None
    return start, min(end, size - 1)


def _check_complete(ctx: Any, cid: Cid) -> None:
    """Refuse (409) a file whose chunks are still arriving, before the first byte is sent:
    a 200 header followed by a stall (or a second answer) is what a client cannot handle."""
    missing = missing_chunks(ctx, cid)
    if missing:
        raise ApiError(
            409,
            "incomplete-file",
            f"this hub has only part of file {cid} so far (chunk {missing[0]} is still "
            "missing); try again when it has synced",
        )


async def download(request: web.Request) -> web.StreamResponse:
    """Stream a file; honours one ``Range`` and ``If-None-Match`` (the ETag is the CID)."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    meta = file_meta(ctx.store, cid)
    _check_complete(ctx, cid)
    etag = f'"{cid}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000, immutable",
        "Content-Security-Policy": FILE_CSP,
        "X-Content-Type-Options": "nosniff",
        "Content-Type": meta["content_type"],
    }
    download_flag = query_str(request, "download", 1)
    if download_flag not in (None, "0", "1"):
        raise bad_request("download is 1 (as an attachment) or 0", "bad-query")
    if meta["name"]:
        disposition = "attachment" if download_flag == "1" else "inline"
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", meta["name"])
        headers["Content-Disposition"] = f'{disposition}; filename="{safe}"'
    if request.headers.get("If-None-Match", "") in (etag, "*"):
        return web.Response(status=304, headers={"ETag": etag})
    size = meta["size"]
    start, end, status = 0, size - 1, 200
    wanted = request.headers.get("Range")
    if wanted and size > 0:
        if_range = request.headers.get("If-Range")
        bounds = _parse_range(wanted, size) if if_range in (None, etag) else None
        if bounds is not None:
            start, end = bounds
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = end - start + 1 if size else 0
    await response.prepare(request)
    if request.method != "HEAD" and size:
        for piece in iter_range(ctx.store, cid, start, end):
            await response.write(piece)
    await response.write_eof()
    return response


_PREVIEWS: OrderedDict[Cid, bytes] = OrderedDict()
_PREVIEW_CACHE: Final = 64


async def _drawing(ctx: Any, cid: Cid, meta: dict[str, Any]) -> bytes:
    """An STL drawn from above at an angle; for any other file (or a model that cannot
    be read or is too large to draw here) a card naming its kind."""
    if meta["content_type"] == "model/stl" and meta["size"] <= MAX_PREVIEW_SOURCE:
        _check_complete(ctx, cid)
        data = b"".join(iter_range(ctx.store, cid, 0, meta["size"] - 1))
        loop = asyncio.get_running_loop()
        try:
            svg: bytes = await loop.run_in_executor(None, stl_to_svg, data)
            return svg
        except PreviewError:
            pass
    return file_card_svg(meta["name"] or "", meta["content_type"])


async def preview(request: web.Request) -> web.Response:
    """A drawing of a file as SVG: an STL model shaded from above at an angle, any other
    file a card naming its kind (so a grid of files always has a picture for each)."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    etag = f'"{cid}-preview"'
    if request.headers.get("If-None-Match", "") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    svg = _PREVIEWS.get(cid)
    if svg is None:
        meta = file_meta(ctx.store, cid)
        svg = await _drawing(ctx, cid, meta)
        _PREVIEWS[cid] = svg
        while len(_PREVIEWS) > _PREVIEW_CACHE:
            _PREVIEWS.popitem(last=False)
    return web.Response(
        body=svg,
        content_type="image/svg+xml",
        headers={
            "ETag": etag,
            "Content-Security-Policy": FILE_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "max-age=86400",
        },
    )


ROUTES: Final[list[Route]] = [
    ("POST", "/files", upload),
    ("GET", "/files/{cid}", download),
    ("GET", "/files/{cid}/info", info),
    ("GET", "/files/{cid}/preview.svg", preview),
]
