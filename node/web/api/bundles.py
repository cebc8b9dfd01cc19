"""USB bundles for another hub: who we know, the size before writing, writing, download.

All of it is the operator's (the token, or an operator's session): planning reads the
whole archive, and writing puts files on the hub machine. See
:mod:`craftnet.node.web.bundles` for what a bundle carries and where it may go.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from craftnet.archive.errors import ArchiveError
from craftnet.archive.have import MAX_SUMMARY_BYTES, read_summary
from craftnet.archive.hlc import HybridClock
from craftnet.archive.peer_state import PeerStates
from craftnet.identity.errors import WrongPassphrase
from craftnet.identity.keys import PrivateKey
from craftnet.node.web import bundles
from craftnet.node.web.api.common import MAX_PASSPHRASE, Route, json_response
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError, bad_request
from craftnet.node.web.http import (
    context,
    field,
    parse_did,
    query_str,
    read_json,
    require_operator,
)

SEND_SIZE: Final = 1 << 20


def _for_did(ctx: NodeContext, text: str | None) -> str:
    if text is None:
        raise bad_request("say which hub the bundle is for: for=did:key:z6Mk...", "bad-query")
    did = parse_did(text)
    if did == ctx.hub_did:
        raise ApiError(422, "bad-hub", "that is this hub itself; name another hub's did")
    return did


def _size(text: str | None, status: int) -> int | None:
    if text is None:
        return None
    try:
        return bundles.parse_size(text)
    except ValueError as exc:
        if status == 400:
            raise bad_request(str(exc), "bad-query") from None
        raise ApiError(status, "bad-size", str(exc)) from None


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Planning and writing read the whole archive: off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


async def list_hubs(request: web.Request) -> web.Response:
    """The hubs this one knows something about, where bundles go, and the hub key's state."""
    require_operator(request)
    ctx = context(request)
    return json_response(
        {
            "hub": ctx.hub_did,
            "hubs": bundles.known_hubs(ctx.store),
            "hub_key": ctx.signer.state(),
            "export_folders": [str(p) for p in bundles.export_folders(ctx.config)],
            "sticks": bundles.sticks(ctx.config),
        }
    )


async def plan(request: web.Request) -> web.Response:
    """What a bundle for one hub would hold, and its size, before anything is written."""
    require_operator(request)
    ctx = context(request)
    did = _for_did(ctx, query_str(request, "for"))
    max_size = _size(query_str(request, "max_size", 40), 400)
    prepared = await _in_thread(bundles.prepare, ctx.store, did, max_size)
    return json_response(prepared.as_dict())


def _hub_passphrase(data: dict[str, Any], name: str, *, required: bool) -> str | None:
    passphrase = field(data, name, str, required=required, max_len=MAX_PASSPHRASE)
    if passphrase == "":
        raise ApiError(422, "missing-field", "the hub key's passphrase is empty")
    return passphrase  # type: ignore[no-any-return]


def _signing_key(ctx: NodeContext, passphrase: str | None) -> PrivateKey | None:
    try:
        return ctx.signer.key(passphrase)
    except WrongPassphrase:
        raise ApiError(403, "wrong-passphrase", "wrong passphrase for the hub's key") from None


def _exclusive(ctx: NodeContext) -> None:
    if not ctx.exporting.acquire(blocking=False):
        raise ApiError(409, "busy", "another bundle is being written; try again when it is done")


async def write_bundle(request: web.Request) -> web.Response:
    """Write the bundle (or its numbered parts) into the export folder on the hub machine."""
    require_operator(request)
    ctx = context(request)
    data = await read_json(request)
    did = _for_did(ctx, field(data, "for", str, max_len=200))
    max_size = _size(field(data, "max_size", str, required=False, max_len=40), 422)
    name = field(data, "name", str, required=False, max_len=200)
    folder = field(data, "folder", str, required=False, max_len=bundles.MAX_FOLDER)
    replace = bool(field(data, "replace", bool, required=False))
    passphrase = _hub_passphrase(data, "hub_passphrase", required=False)
    if name is None:
        name = bundles.default_name(did)
    out = bundles.target(ctx.config, folder, name)
    key = await _in_thread(_signing_key, ctx, passphrase)
    _exclusive(ctx)
    try:
        prepared = await _in_thread(bundles.prepare, ctx.store, did, max_size)
        written = await _in_thread(bundles.write, ctx.store, prepared, out, key, replace=replace)
    finally:
        ctx.exporting.release()
    files = [{"file": str(p.path), "blocks": p.blocks, "bytes": p.bytes} for p in written]
    return json_response(
        {
            **prepared.as_dict(),
            "files": files,
            "bytes_written": sum(p.bytes for p in written),
            "summary": key is not None,
        },
        status=201,
    )


async def download(request: web.Request) -> web.StreamResponse:
    """One bundle for a hub, sent as a file to save. It is written aside first (the plan
    decides its size), opened, and removed from the folder before the first byte is sent:
    nothing is left behind, however the download ends."""
    require_operator(request)
    ctx = context(request)
    did = _for_did(ctx, query_str(request, "for"))
    key = await _in_thread(_signing_key, ctx, None)
    name = bundles.default_name(did)
    _exclusive(ctx)
    aside = Path(tempfile.mkdtemp(prefix=".bundle-", dir=ctx.config.home))
    try:
        prepared = await _in_thread(bundles.prepare, ctx.store, did, None)
        written = await _in_thread(bundles.write, ctx.store, prepared, aside / name, key)
        stream = written[0].path.open("rb")
    finally:
        shutil.rmtree(aside, ignore_errors=True)
        ctx.exporting.release()
    with stream:
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.ipld.car",
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            }
        )
        response.content_length = written[0].bytes
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        while chunk := await loop.run_in_executor(None, stream.read, SEND_SIZE):
            await response.write(chunk)
        await response.write_eof()
    return response


async def unlock(request: web.Request) -> web.Response:
    """Unlock the hub's key once, so that bundles carry this hub's signed summary."""
    require_operator(request)
    ctx = context(request)
    data = await read_json(request)
    passphrase = _hub_passphrase(data, "passphrase", required=True)
    await _in_thread(_signing_key, ctx, passphrase)
    return json_response({"hub_key": ctx.signer.state()})


async def receive_have(request: web.Request) -> web.Response:
    """Take in another hub's have-file (``craftnet have``): what that hub holds."""
    require_operator(request)
    ctx = context(request)
    if request.content_length is not None and request.content_length > MAX_SUMMARY_BYTES:
        raise ApiError(413, "too-large", f"a have-file is at most {MAX_SUMMARY_BYTES} bytes")
    raw = await request.content.read(MAX_SUMMARY_BYTES + 1)
    if len(raw) > MAX_SUMMARY_BYTES:
        raise ApiError(413, "too-large", f"a have-file is at most {MAX_SUMMARY_BYTES} bytes")
    try:
        summary = read_summary(raw)
    except ArchiveError as exc:
        raise ApiError(422, "bad-have-file", f"not a have-file this hub can read: {exc}") from None
    if summary.hub == ctx.hub_did:
        raise ApiError(422, "bad-hub", "that have-file is this hub's own")
    kept = PeerStates(ctx.store).record(summary, "have-file", HybridClock().tick())
    state = PeerStates(ctx.store).get(summary.hub)
    assert state is not None  # just recorded, or a newer one was already here
    return json_response({"kept": kept, "hub": bundles.hub_view(state)})


ROUTES: Final[list[Route]] = [
    ("GET", "/bundles/hubs", list_hubs),
    ("GET", "/bundles/plan", plan),
    ("POST", "/bundles", write_bundle),
    ("GET", "/bundles/download", download),
    ("POST", "/bundles/unlock", unlock),
    ("POST", "/bundles/have", receive_have),
]
