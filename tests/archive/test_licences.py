"""SPDX licence ids and what a derivative's author is told about its parent's licence."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive.licences import (
    KNOWN_LICENCES,
    LicenceError,
    check_derivative,
    is_custom,
    validate_licence,
)

REQUIRED = [
    "CC0-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-SA-4.0",
    "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0",
    "MIT",
    "Apache-2.0",
    "GPL-3.0-or-later",
    "CERN-OHL-S-2.0",
    "CERN-OHL-W-2.0",
    "CERN-OHL-P-2.0",
]


@pytest.mark.parametrize("spdx", REQUIRED)
def test_common_licences_are_known(spdx: str) -> None:
    assert validate_licence(spdx) == spdx
    assert spdx in KNOWN_LICENCES


def test_custom_licences() -> None:
    assert validate_licence("LicenseRef-Adopt-a-Workshop-1.0") == "LicenseRef-Adopt-a-Workshop-1.0"
    assert is_custom("LicenseRef-Adopt-a-Workshop-1.0")
    assert not is_custom("MIT")


@pytest.mark.parametrize(
    ("spdx", "message"),
    [
        ("mit", "spelled 'MIT'"),
        ("cc-by-sa-4.0", "spelled 'CC-BY-SA-4.0'"),
        ("GPL-3.0", "unknown licence"),
        ("LicenseRef-", "unknown licence"),
        ("LicenseRef-has space", "unknown licence"),
        ("LicenseRef-" + "x" * 65, "unknown licence"),
        ("", "unknown licence"),
        ("MIT OR Apache-2.0", "unknown licence"),  # expressions are not accepted, one id only
        (None, "SPDX id string"),
    ],
)
def test_bad_licence_ids(spdx: object, message: str) -> None:
    with pytest.raises(LicenceError, match=message):
        validate_licence(spdx)


def codes(child: str | None, parent: str | None) -> list[str]:
    return [w.code for w in check_derivative(child, parent)]


@pytest.mark.parametrize("parent", ["CC0-1.0", "CC-BY-4.0", "MIT", "Apache-2.0", "CERN-OHL-P-2.0"])
@pytest.mark.parametrize("child", REQUIRED)
def test_permissive_parents_allow_any_derivative(child: str, parent: str) -> None:
    assert check_derivative(child, parent) == []


@pytest.mark.parametrize("child", REQUIRED)
def test_no_derivatives(child: str) -> None:
    for parent in ("CC-BY-ND-4.0", "CC-BY-NC-ND-4.0"):
        warnings = check_derivative(child, parent)
        assert warnings[0].code == "no-derivatives"
        assert warnings[0].severity == "error"
        assert parent in warnings[0].message


def test_share_alike_requires_the_same_or_a_declared_compatible_licence() -> None:
    assert codes("CC-BY-SA-4.0", "CC-BY-SA-4.0") == []
    assert codes("GPL-3.0-or-later", "CC-BY-SA-4.0") == []  # declared one-way compatible
    assert codes("CC-BY-SA-4.0", "GPL-3.0-or-later") == ["share-alike"]  # not the other way
    assert codes("CC-BY-4.0", "CC-BY-SA-4.0") == ["share-alike"]
    assert codes("CERN-OHL-S-2.0", "CERN-OHL-S-2.0") == []
    assert codes("CERN-OHL-P-2.0", "CERN-OHL-S-2.0") == ["share-alike"]
    assert codes("LicenseRef-Hub-1.0", "CERN-OHL-W-2.0") == ["share-alike"]
    (warning,) = check_derivative("MIT", "CC-BY-SA-4.0")
    assert warning.severity == "error"
    assert "must be licensed CC-BY-SA-4.0 or GPL-3.0-or-later, not MIT" in warning.message


def test_non_commercial_carries_over() -> None:
    (same,) = check_derivative("CC-BY-NC-4.0", "CC-BY-NC-4.0")
    assert same.code == "non-commercial"
    assert same.severity == "warning"
    assert "carries over" in same.message
    (dropped,) = check_derivative("CC-BY-4.0", "CC-BY-NC-4.0")
    assert dropped.code == "non-commercial"
    assert "still" in dropped.message
    assert codes("CC-BY-NC-SA-4.0", "CC-BY-NC-SA-4.0") == ["non-commercial"]
    assert codes("CC-BY-SA-4.0", "CC-BY-NC-SA-4.0") == ["share-alike", "non-commercial"]
    assert codes("CC-BY-4.0", "CC-BY-NC-ND-4.0") == ["no-derivatives", "non-commercial"]


def test_unknown_and_missing_licences() -> None:
    assert codes("MIT", "LicenseRef-Grandmas-Patterns") == ["parent-licence-custom"]
    assert codes("MIT", None) == ["parent-licence-unknown"]
    assert codes(None, "CC-BY-4.0") == ["missing-licence"]


@given(
    st.sampled_from([*REQUIRED, "LicenseRef-X", None]),
    st.sampled_from([*REQUIRED, "LicenseRef-Y", None]),
)
def test_warnings_are_structured(child: str | None, parent: str | None) -> None:
    for warning in check_derivative(child, parent):
        assert warning.code and warning.message
        assert warning.severity in ("error", "warning", "info")
    if child is not None and child == parent and parent in KNOWN_LICENCES:
        # Deriving under the parent's own licence is never an error, unless it forbids derivatives.
        errors = [w for w in check_derivative(child, parent) if w.severity == "error"]
        assert [w.code for w in errors] == (["no-derivatives"] if "ND" in parent else [])


def test_licences_and_warning_codes_are_documented() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "data-model.md").read_text("utf-8")
    for spdx in KNOWN_LICENCES:
        assert f"`{spdx}`" in text
    codes_seen = {
        w.code
        for child in [*REQUIRED, "LicenseRef-X", None]
        for parent in [*REQUIRED, "LicenseRef-Y", None]
        for w in check_derivative(child, parent)
    }
    for code in [*codes_seen, "parent-missing"]:
        assert f"`{code}`" in text, f"warning code {code} is not documented"
