"""Request helpers shared by the API and the pages: the context, auth, input parsing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiohttp import web

from craftnet.archive.cid import Cid
from craftnet.archive.errors import CidError
from craftnet.node.web.auth import SESSION_COOKIE, Session
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError, bad_request

CTX: Final = web.AppKey("craftnet_context", NodeContext)
MAX_JSON_BYTES: Final = 1 * 2**20
# Every parameter has its own limit in characters; percent-encoded, the longest query the
# OpenAPI document allows is about 20 KiB. The request line may be a little longer.
MAX_QUERY_BYTES: Final = 32 * 1024
MAX_REQUEST_LINE: Final = MAX_QUERY_BYTES + 8 * 1024
MAX_CID_TEXT: Final = 200
MAX_DID_TEXT: Final = 200
# The forms the OpenAPI document gives as patterns (a test checks they are the same).
# A CIDv1 of dag-cbor or raw with a BLAKE3-256 multihash, the only kind this hub makes.
CID_PATTERN: Final = r"^baf(?:yr|kr)4i[a-h][a-z2-7]{50}[aeimquy4]$"
DID_PATTERN: Final = r"^did:key:z[1-9A-HJ-NP-Za-km-z]{8,180}$"
DID_TEXT: Final = re.compile(DID_PATTERN)
# A plain file name: no folder separators or control characters, not a dot file, and not
# only spaces; 1-200 characters.
FILE_NAME_PATTERN: Final = r'^[^\x00-\x20\x7f/\\:*?"<>|.][^\x00-\x1f\x7f/\\:*?"<>|]{0,199}$'
FILE_NAME: Final = re.compile(FILE_NAME_PATTERN)
CSRF_HEADER: Final = "X-Requested-With"
CSRF_VALUE: Final = "craftnet"


def context(request: web.Request) -> NodeContext:
    """The node behind this app."""
    return request.app[CTX]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: with the operator's token, in a session, or nobody known."""

    via: Literal["token", "session"] | None
    session: Session | None = None

    @property
    def known(self) -> bool:
        """Whether the request proved anything at all."""
        return self.via is not None

    @property
    def operator(self) -> bool:
        """The operator: the token, or a session opened with it."""
        return self.via == "token" or (self.session is not None and self.session.role == "operator")

    @property
    def artisan(self) -> Session | None:
        """The artisan's session (their handle and key), if an artisan is logged in."""
        if self.session is not None and self.session.role == "artisan":
            return self.session
        return None


def caller(request: web.Request) -> Caller:
    """Who the request comes from (a wrong bearer token is refused outright)."""
    gate = context(request).gate
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not gate.token_ok(token.strip()):
            raise ApiError(401, "unauthorized", "the bearer token is not this hub's API token")
        return Caller("token")
    found = gate.session(request.cookies.get(SESSION_COOKIE))
    return Caller("session", found) if found is not None else Caller(None)


def _csrf(request: web.Request, who: Caller) -> None:
    if who.via == "session" and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise ApiError(
            403, "csrf", f"a browser session must send the header {CSRF_HEADER}: {CSRF_VALUE}"
        )


def require_write(request: web.Request) -> Caller:
    """Refuse unless the request carries the token or a session (and, for a session, the
    CSRF header that a cross-site form cannot send)."""
    who = caller(request)
    if not who.known:
        raise ApiError(
            401,
            "unauthorized",
            "log in first: an artisan with their handle and passphrase at /login, "
            "a script with 'Authorization: Bearer <the hub's API token>'",
        )
    _csrf(request, who)
    return who


def require_operator(request: web.Request) -> Caller:
    """Refuse unless the hub's operator sends it (the token, or a session made with it)."""
    who = require_write(request)
    if not who.operator:
        raise ApiError(403, "operator-only", "only the hub's operator may do this")
    return who


def optional_write(request: web.Request) -> Caller:
    """Who is writing, when a write is also open to walk-ins (CSRF still checked)."""
    who = caller(request)
    _csrf(request, who)
    return who


def require_read(request: web.Request) -> None:
    """Refuse reads without credentials when the hub is configured to."""
    if context(request).config.require_token_for_reads and not caller(request).known:
        raise ApiError(
            401,
            "unauthorized",
            "this hub requires a login for reading too; log in at /login",
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
    if len(text) > MAX_CID_TEXT:
        raise bad_request("that is not a CID (too long)", "bad-cid")
    try:
        return Cid.parse(text)
    except CidError as exc:
        raise bad_request(f"{text[:80]!r} is not a CID: {exc}", "bad-cid") from None


def parse_did(text: str) -> str:
    """A did:key from the path (its form only: an unknown artisan is a 404 later)."""
    if len(text) > MAX_DID_TEXT or not DID_TEXT.fullmatch(text):
        raise bad_request(f"{text[:80]!r} is not a did:key like did:key:z6Mk...", "bad-did")
    return text


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low..high``."""
    raw = request.query.get(name)
    if raw is None:
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
