"""Click parameter types for craftnet values: CIDs, dids, record types."""

from __future__ import annotations

from typing import Any

import click

from craftnet.archive.cid import Cid
from craftnet.errors import CraftnetError


class CidParam(click.ParamType[Cid, Any]):
    """A base32 CIDv1 given on the command line."""

    name = "cid"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Cid:
        """Parse ``value``; a malformed CID is a usage error (exit status 2)."""
        if isinstance(value, Cid):
            return value
        try:
            return Cid.parse(str(value))
        except CraftnetError as exc:
            self.fail(str(exc), param, ctx)


CID = CidParam()
