"""Errors raised by the archive package."""

from craftnet.errors import CraftnetError


class ArchiveError(CraftnetError):
    """Base class of archive errors."""


class CodecError(ArchiveError):
    """Bytes are not canonical DAG-CBOR, or a value cannot be encoded as such."""


class CidError(ArchiveError):
    """A CID string or byte string is malformed or uses an unsupported codec or hash."""


class NotFound(ArchiveError):
    """A block, record or pin is not in the store."""


class IntegrityError(ArchiveError):
    """Bytes do not match the CID that names them, or the store is inconsistent."""


class SchemaError(ArchiveError):
    """A record does not match the schema of its type."""


class RecordError(ArchiveError):
    """A record envelope is malformed or its signature does not verify."""


class BundleError(ArchiveError):
    """A CAR bundle is malformed or holds a bad block; nothing was imported."""


class BundleTruncated(BundleError):
    """A bundle's stream ended before the bundle did (a cut-short copy, a pipe whose sender
    stopped): what came before may be good, and an import may keep it to continue."""


class StoreError(ArchiveError):
    """The store could not be opened or written."""


class WrongLink(ArchiveError):
    """A record about to be published links a block of the wrong kind, or one not held."""
