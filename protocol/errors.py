"""Errors raised by the protocol engines; they say who broke the rules."""

from craftnet.errors import CraftnetError


class ProtocolError(CraftnetError):
    """Base class of protocol errors."""


class LocalProtocolError(ProtocolError):
    """Our side tried to do something the protocol forbids (a bug here)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; it costs the peer score."""


class FrameError(RemoteProtocolError):
    """A frame is malformed: bad length prefix, oversized, truncated or not DAG-CBOR."""


class FrameTooLarge(FrameError):
    """A frame declares a length over the limit; the stream cannot be resynchronised."""


class TruncatedFrame(FrameError):
    """The stream ended in the middle of a frame."""


class UnsupportedVersion(RemoteProtocolError):
    """A message carries a protocol version this node does not speak."""


class MalformedMessage(RemoteProtocolError):
    """A frame decodes but does not match the schema of any message type."""
