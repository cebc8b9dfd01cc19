"""Request helpers shared by the API and the pages: the context, auth, input parsing."""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from craftnet.archive.cid import Cid
from craftnet.archive.errors import CidError
from craftnet.node.web.auth import SESSION_COOKIE
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError, bad_request

CTX: Final = web.AppKey("craftnet_context", NodeContext)
MAX_JSON_BYTES: Final = 1 * 2**20
MAX_QUERY_BYTES: Final = 4096
CSRF_HEADER: Final = "X-Requested-With"
CSRF_VALUE: Final = "craftnet"


def context(request: web.Request) -> NodeContext:
    """The node behind this app."""
    return request.app[CTX]


def credentials(request: web.Request) -> str | None:
    """How the request proves itself: ``"token"``, ``"session"`` or None."""
    gate = context(request).gate
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not gate.token_ok(token.strip()):
            raise ApiError(401, "unauthorized", "the bearer token is not this hub's API token")
        return "token"
    sid = request.cookies.get(SESSION_COOKIE)
    if sid and gate.session_ok(sid):
        return "session"
    return None


def require_write(request: web.Request) -> None:
    """Refuse unless the request carries the token or a session (and, for a session, the
    CSRF header that a cross-site form cannot send)."""
    how = credentials(request)
    if how is None:
        raise ApiError(
            401,
            "unauthorized",
            "writing needs the hub's API token: send 'Authorization: Bearer <token>' "
            "or log in at /login",
        )
    if how == "session" and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise ApiError(
            403, "csrf", f"a browser session must send the header {CSRF_HEADER}: {CSRF_VALUE}"
        )


def require_read(request: web.Request) -> None:
    """Refuse reads without credentials when the hub is configured to."""
    if context(request).config.require_token_for_reads and credentials(request) is None:
        raise ApiError(
            401,
            "unauthorized",
            "this hub requires its API token for reading too; log in at /login",
        )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (size-limited, strictly parsed)."""
    ctype = request.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported-media-type", "send the body as application/json")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(413, "too-large", f"a JSON body may be at most {MAX_JSON_BYTES} bytes")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, "too-large", f"a JSON body may be at most {MAX_JSON_BYTES} bytes")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}", "malformed-json") from None
    if not isinstance(value, dict):
        raise bad_request("the body must be a JSON object", "malformed-json")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def field(
    data: dict[str, Any], name: str, kind: type, *, required: bool = True, max_len: int = 10_000
) -> Any:
    """``data[name]`` checked to be of ``kind`` (a str is also length-checked)."""
    if name not in data or data[name] is None:
        if required:
            raise ApiError(422, "missing-field", f"the field {name!r} is required")
        return None
    value = data[name]
    if type(value) is not kind:
        raise ApiError(
            422,
            "wrong-type",
            f"the field {name!r} must be a {_kind_name(kind)}, got {_kind_name(type(value))}",
        )
    if isinstance(value, str) and len(value) > max_len:
        raise ApiError(422, "too-long", f"the field {name!r} is longer than {max_len} characters")
    return value


def _kind_name(kind: type) -> str:
    return {
        str: "string",
        int: "integer",
        bool: "boolean",
        dict: "object",
        list: "array",
        float: "number",
        type(None): "null",
    }.get(kind, kind.__name__)


def parse_cid(text: str) -> Cid:
    """A CID from the path or query; 400 if it is not one."""
    if len(text) > 200:
        raise bad_request("that is not a CID (too long)", "bad-cid")
    try:
        return Cid.parse(text)
    except CidError as exc:
        raise bad_request(f"{text[:80]!r} is not a CID: {exc}", "bad-cid") from None


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low..high``."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise bad_request(
            f"the query parameter {name!r} must be an integer {low}..{high}", "bad-query"
        )
    value = int(raw)
    if not low <= value <= high:
        raise bad_request(f"the query parameter {name!r} must be {low}..{high}", "bad-query")
    return value


def query_str(request: web.Request, name: str, max_len: int = 200) -> str | None:
    """A text query parameter (None when absent or empty)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise bad_request(f"give the query parameter {name!r} once", "bad-query")
    if not values or values[0] == "":
        return None
    if len(values[0]) > max_len:
        raise bad_request(f"the query parameter {name!r} is longer than {max_len}", "bad-query")
    return values[0]
