"""The API's errors: each carries its HTTP status and a stable code.

Every failure a client can see has one JSON shape, ``{"error": {"code", "message"}}``.
Errors from the layers below (:class:`~craftnet.errors.CraftnetError` subclasses) are
mapped to a status here, once, so handlers just raise; anything unexpected becomes a
500 whose message says nothing about the code (the traceback goes to the hub's log).
"""

from __future__ import annotations

from typing import Any, Final

from craftnet.archive.crdt.errors import (
    DocumentError,
    EditError,
    InvalidOp,
    NotAnEditor,
    UnknownDocument,
)
from craftnet.archive.errors import (
    BundleError,
    CidError,
    CodecError,
    IntegrityError,
    NotFound,
    RecordError,
    SchemaError,
)
from craftnet.archive.index import QueryError
from craftnet.errors import CraftnetError
from craftnet.identity.errors import (
    BadKey,
    BadSignature,
    KeystoreError,
    MalformedDid,
    SuccessionError,
    WrongPassphrase,
)


class ApiError(CraftnetError):
    """An error to answer with ``status`` and a machine-readable ``code``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON error document."""
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def bad_request(message: str, code: str = "bad-request") -> ApiError:
    """A 400 for input the client should fix."""
    return ApiError(400, code, message)


# Most specific first: the first matching class decides.
_MAPPING: Final[tuple[tuple[type[Exception], int, str], ...]] = (
    (UnknownDocument, 404, "not-found"),
    (NotFound, 404, "not-found"),
    (WrongPassphrase, 403, "wrong-passphrase"),
    (NotAnEditor, 403, "not-an-editor"),
    (EditError, 422, "edit-refused"),
    (InvalidOp, 422, "invalid-operation"),
    (DocumentError, 422, "edit-refused"),
    (CidError, 400, "bad-cid"),
    (MalformedDid, 400, "bad-did"),
    (QueryError, 400, "bad-query"),
    (SchemaError, 422, "invalid-record"),
    (RecordError, 422, "invalid-record"),
    (CodecError, 400, "bad-encoding"),
    (BundleError, 422, "bundle"),
    (KeystoreError, 422, "keystore"),
    (BadKey, 422, "bad-key"),
    (BadSignature, 422, "bad-signature"),
    (SuccessionError, 422, "invalid-record"),
    (IntegrityError, 500, "integrity"),
)
_DAMAGED: Final = "a block in this hub's archive is damaged; run 'craftnet verify'"


def from_exception(exc: CraftnetError) -> ApiError:
    """The API error for an error raised below the web layer."""
    if isinstance(exc, ApiError):
        return exc
    for kind, status, code in _MAPPING:
        if isinstance(exc, kind):
            return ApiError(status, code, str(exc) if status < 500 else _DAMAGED)
    # An error no handler expected is the hub's fault, not the client's: a 500.
    return ApiError(500, "internal", "internal error; the hub's log has the details")
