"""Errors of CRDT documents: every one is an :class:`ArchiveError`."""

from craftnet.archive.errors import ArchiveError, NotFound


class DocumentError(ArchiveError):
    """Base class of document errors."""


class InvalidOp(DocumentError):
    """An operation record is malformed: wrong type, bad body, bad references, bad signature."""


class BadOpSignature(InvalidOp):
    """An operation's signature does not verify for its author; it was not stored."""


class OpTooLarge(InvalidOp):
    """An operation exceeds a size limit (bytes, changes, text, value); it was not stored."""


class UnknownDocument(DocumentError, NotFound):
    """No document with that CID is held by this hub."""


class EditError(DocumentError):
    """A local edit cannot be made: unknown step, wrong field kind, no edit rights."""


class NotAnEditor(EditError):
    """The local key may not edit this document (see the document's ACL)."""
