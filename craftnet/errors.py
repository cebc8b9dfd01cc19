"""The root of craftnet's exception hierarchy.

Every package raises subclasses of :class:`CraftnetError` so that callers (the CLI,
the HTTP API, the node's stream handlers) can catch one type and show its message.
Messages are written for the person who has to act on them.
"""


class CraftnetError(Exception):
    """Base class of every error craftnet raises on purpose."""
