"""SPDX licence identifiers and the licence rules between a derivative and its parent.

Designs and techniques name their licence by SPDX id. This module knows the licences
craft communities use most (Creative Commons for media and text, permissive and
copyleft software licences for code and G-code, CERN-OHL for hardware) and answers
two questions: is this a licence id we accept, and what should an artisan be told when
a design derived from a parent carries a given licence. Answers are structured
warnings (a stable ``code`` for programs and a ``message`` for people), not errors:
licences are law, not protocol, and a hub stores what its members publish. Nothing
here is legal advice; the messages say what to check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from craftnet.archive.errors import SchemaError

LICENCE_REF_PREFIX: Final = "LicenseRef-"
# SPDX: "LicenseRef-" followed by letters, digits, '.' and '-'.
_LICENCE_REF: Final = re.compile(r"LicenseRef-[A-Za-z0-9.\-]{1,64}")

Severity = Literal["error", "warning", "info"]


class LicenceError(SchemaError):
    """A licence id is not a recognised SPDX id nor a ``LicenseRef-`` custom licence."""


@dataclass(frozen=True, slots=True)
class Licence:
    """What craftnet needs to know about one licence."""

    spdx: str
    name: str
    share_alike: bool = False
    non_commercial: bool = False
    no_derivatives: bool = False


@dataclass(frozen=True, slots=True)
class LicenceWarning:
    """One finding about a licence: a stable ``code``, a ``severity`` and a message for people."""

    code: str
    severity: Severity
    message: str


KNOWN_LICENCES: Final[dict[str, Licence]] = {
    lic.spdx: lic
    for lic in (
        Licence("CC0-1.0", "Creative Commons Zero v1.0 Universal (public domain dedication)"),
        Licence("CC-BY-4.0", "Creative Commons Attribution 4.0 International"),
        Licence(
            "CC-BY-SA-4.0",
            "Creative Commons Attribution-ShareAlike 4.0 International",
            share_alike=True,
        ),
        Licence(
            "CC-BY-NC-4.0",
            "Creative Commons Attribution-NonCommercial 4.0 International",
            non_commercial=True,
        ),
        Licence(
            "CC-BY-NC-SA-4.0",
            "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International",
            share_alike=True,
            non_commercial=True,
        ),
        Licence(
            "CC-BY-ND-4.0",
            "Creative Commons Attribution-NoDerivatives 4.0 International",
            no_derivatives=True,
        ),
        Licence(
            "CC-BY-NC-ND-4.0",
            "Creative Commons Attribution-NonCommercial-NoDerivatives 4.0 International",
            non_commercial=True,
            no_derivatives=True,
        ),
        Licence("MIT", "MIT License"),
        Licence("Apache-2.0", "Apache License 2.0"),
        Licence("GPL-3.0-or-later", "GNU General Public License v3.0 or later", share_alike=True),
        Licence(
            "CERN-OHL-S-2.0",
            "CERN Open Hardware Licence Version 2 - Strongly Reciprocal",
            share_alike=True,
        ),
        Licence(
            "CERN-OHL-W-2.0",
            "CERN Open Hardware Licence Version 2 - Weakly Reciprocal",
            share_alike=True,
        ),
        Licence("CERN-OHL-P-2.0", "CERN Open Hardware Licence Version 2 - Permissive"),
    )
}

# Share-alike parents and the licences a derivative may carry instead of the very same
# one. Only compatibilities the licence stewards declared are listed: Creative Commons
# declared GPLv3 a compatible licence for adaptations of BY-SA 4.0 works (2015).
SHARE_ALIKE_COMPATIBLE: Final[dict[str, frozenset[str]]] = {
    "CC-BY-SA-4.0": frozenset({"CC-BY-SA-4.0", "GPL-3.0-or-later"}),
    "CC-BY-NC-SA-4.0": frozenset({"CC-BY-NC-SA-4.0"}),
    "GPL-3.0-or-later": frozenset({"GPL-3.0-or-later"}),
    "CERN-OHL-S-2.0": frozenset({"CERN-OHL-S-2.0"}),
    "CERN-OHL-W-2.0": frozenset({"CERN-OHL-W-2.0"}),
}


def is_custom(spdx: str) -> bool:
    """Tell whether ``spdx`` is a ``LicenseRef-`` id for a licence outside the SPDX list."""
    return spdx.startswith(LICENCE_REF_PREFIX)


def validate_licence(spdx: object) -> str:
    """Return ``spdx`` if it is a known SPDX id or a well-formed ``LicenseRef-``; else raise."""
    if not isinstance(spdx, str):
        raise LicenceError(f"a licence is an SPDX id string, got {type(spdx).__name__}")
    if spdx in KNOWN_LICENCES or _LICENCE_REF.fullmatch(spdx):
        return spdx
    for known in KNOWN_LICENCES:
        if known.lower() == spdx.lower():
            raise LicenceError(f"licence {spdx!r} is spelled {known!r} in SPDX")
    raise LicenceError(
        f"unknown licence {spdx!r:.80}; use an SPDX id such as "
        f"{', '.join(sorted(KNOWN_LICENCES))}, or 'LicenseRef-<name>' for a custom licence"
    )


def check_derivative(child: str | None, parent: str | None) -> list[LicenceWarning]:
    """What to tell the author of a work licensed ``child`` derived from one licensed ``parent``.

    ``None`` means the record names no licence (an opaque or foreign record).
    """
    if parent is None:
        return [
            LicenceWarning(
                "parent-licence-unknown",
                "warning",
                "the parent names no licence, so reuse is not granted by default; "
                "ask its author before publishing a derivative",
            )
        ]
    if child is None:
        return [
            LicenceWarning(
                "missing-licence",
                "warning",
                f"the derivative names no licence; its parent is {parent}",
            )
        ]
    parent_lic = KNOWN_LICENCES.get(parent)
    if parent_lic is None:
        return [
            LicenceWarning(
                "parent-licence-custom",
                "info",
                f"the parent uses the custom licence {parent}; craftnet cannot check it, "
                "read its terms before deriving",
            )
        ]
    warnings: list[LicenceWarning] = []
    if parent_lic.no_derivatives:
        warnings.append(
            LicenceWarning(
                "no-derivatives",
                "error",
                f"the parent is licensed {parent}, which forbids sharing adapted works; "
                "ask its author for permission or derive from another design",
            )
        )
    if parent_lic.share_alike:
        allowed = SHARE_ALIKE_COMPATIBLE.get(parent, frozenset({parent}))
        if child not in allowed:
            names = " or ".join(sorted(allowed))
            warnings.append(
                LicenceWarning(
                    "share-alike",
                    "error",
                    f"the parent is licensed {parent} (share-alike): a derivative must be "
                    f"licensed {names}, not {child}",
                )
            )
    if parent_lic.non_commercial:
        child_lic = KNOWN_LICENCES.get(child)
        if child_lic is not None and not child_lic.non_commercial:
            message = (
                f"the parent is licensed {parent} (non-commercial): the derivative's licence "
                f"{child} seems to allow commercial use, but the parent's part of it still "
                "may not be used commercially"
            )
        else:
            message = (
                f"the parent is licensed {parent} (non-commercial): the restriction carries "
                "over, the derivative may not be sold or used commercially"
            )
        warnings.append(LicenceWarning("non-commercial", "warning", message))
    return warnings
