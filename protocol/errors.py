"""Errors raised by the protocol engines; they say who broke the rules."""

from craftnet.errors import CraftnetError


class ProtocolError(CraftnetError):
    """Base class of protocol errors."""


class LocalProtocolError(ProtocolError):
    """Our side tried to do something the protocol forbids (a bug here)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; it costs the peer score."""
