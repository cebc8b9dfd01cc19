"""Strict Ed25519 verification and did:key parsing, checked against published vectors.

The vectors live in ``tests/identity/vectors/``:

- ``speccheck_cases.json``: the 12 edge cases of *Taming the many EdDSAs* (Chalkias,
  Garillot, Nikolaenko 2020), with the verdict craftnet's strict mode gives each one;
- ``wycheproof_ed25519.json``: Project Wycheproof's 151 Ed25519 verification tests.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.errors import CraftnetError
from craftnet.identity import keys
from craftnet.identity.errors import BadKey, BadSignature, IdentityError, MalformedDid
from craftnet.identity.keys import DID_KEY_LEN, PrivateKey, PublicKey, did_to_raw, parse_did

VECTORS = Path(__file__).parent / "vectors"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


SPECCHECK = _load("speccheck_cases.json")["cases"]
WYCHEPROOF = [
    pytest.param(group["pk"], test, id=f"tc{test['tcId']}-{test['flags'][0]}")
    for group in _load("wycheproof_ed25519.json")["testGroups"]
    for test in group["tests"]
]

# RFC 8032 section 7.1, tests 1-3: (secret seed, public key, message, signature).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


# --- RFC 8032 -------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors_sign_and_verify(
    seed: str, public: str, message: str, signature: str
) -> None:
    key = PrivateKey.from_seed(bytes.fromhex(seed))
    assert key.public.raw.hex() == public
    # Ed25519 signing is deterministic, so our signature must be the RFC's, byte for byte.
    assert key.sign(bytes.fromhex(message)).hex() == signature
    PublicKey(bytes.fromhex(public)).verify(bytes.fromhex(signature), bytes.fromhex(message))


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_signature_does_not_verify_another_message(
    seed: str, public: str, message: str, signature: str
) -> None:
    with pytest.raises(BadSignature, match="does not verify"):
        PublicKey(bytes.fromhex(public)).verify(
            bytes.fromhex(signature), bytes.fromhex(message) + b"!"
        )


# --- "Taming the many EdDSAs" ---------------------------------------------------------


@pytest.mark.parametrize("case", SPECCHECK, ids=[f"case{c['case']}" for c in SPECCHECK])
def test_speccheck_case_gets_the_documented_verdict(case: dict[str, Any]) -> None:
    message = bytes.fromhex(case["message"])
    signature = bytes.fromhex(case["signature"])
    if case["rejected_at"] == "public_key":
        with pytest.raises(BadKey, match="small order"):
            PublicKey(bytes.fromhex(case["pub_key"]))
        return
    key = PublicKey(bytes.fromhex(case["pub_key"]))
    if case["strict"] == "accept":
        key.verify(signature, message)
    else:
        with pytest.raises(BadSignature):
            key.verify(signature, message)


def test_speccheck_verdicts_match_libsodium() -> None:
    # The speccheck results table: libsodium verifies case 3 only. So do we.
    accepted = [c["case"] for c in SPECCHECK if c["strict"] == "accept"]
    assert accepted == [3]
    assert len(SPECCHECK) == 12


@pytest.mark.parametrize(
    ("case", "reason"),
    [(2, "R is a point of small order"), (6, "S is not reduced"), (7, "S is not reduced")],
)
def test_speccheck_rejections_name_the_reason(case: int, reason: str) -> None:
    vector = SPECCHECK[case]
    with pytest.raises(BadSignature, match=reason):
        PublicKey(bytes.fromhex(vector["pub_key"])).verify(
            bytes.fromhex(vector["signature"]), bytes.fromhex(vector["message"])
        )


# --- Wycheproof -----------------------------------------------------------------------


@pytest.mark.parametrize(("public", "test"), WYCHEPROOF)
def test_wycheproof_vector(public: str, test: dict[str, Any]) -> None:
    key = PublicKey(bytes.fromhex(public))
    signature, message = bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"])
    if test["result"] == "valid":
        key.verify(signature, message)
    else:
        with pytest.raises(BadSignature):
            key.verify(signature, message)


def test_wycheproof_file_is_complete() -> None:
    assert len(WYCHEPROOF) == _load("wycheproof_ed25519.json")["numberOfTests"] == 151


# --- the small-order list, derived from the curve itself ------------------------------

_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P
_L = 2**252 + 27742317777372353535851937790883648493
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
Point = tuple[int, int]


def _add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, -1, _P) % _P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, -1, _P) % _P
    return x3, y3


def _mul(k: int, point: Point) -> Point:
    result: Point = (0, 1)
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


def _x_for(y: int) -> int | None:
    """Some x with (x, y) on the curve, or None (RFC 8032 section 5.1.3)."""
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if v * x * x % _P == u:
        return x
    if v * x * x % _P == (-u) % _P:
        return x * _SQRT_M1 % _P
    return None


def _torsion_subgroup() -> set[Point]:
    """The 8 points of order dividing 8, found as L * (random curve point)."""
    y = 2
    while True:
        x = _x_for(y)
        if x is not None:
            t = _mul(_L, (x, y))
            group = {_mul(i, t) for i in range(8)}
            if len(group) == 8:
                return group
        y += 1


def test_small_order_list_is_exactly_the_torsion_points_and_their_aliases() -> None:
    torsion = _torsion_subgroup()
    assert all(_mul(8, point) == (0, 1) for point in torsion)
    ys = {y for _, y in torsion}
    # The list holds encodings with the sign bit cleared: one entry per y...
    expected = {y.to_bytes(32, "little") for y in ys}
    # ...plus the non-canonical aliases y + p that still fit in 255 bits (y = 0 and 1).
    expected |= {(y + _P).to_bytes(32, "little") for y in ys if y + _P < 2**255}
    assert expected == keys._SMALL_ORDER
    assert len(keys._SMALL_ORDER) == 7  # as libsodium's ge25519_has_small_order blocklist


@pytest.mark.parametrize("encoding", sorted(keys._SMALL_ORDER))
@pytest.mark.parametrize("sign", [0, 0x80])
def test_every_small_order_encoding_is_refused_as_key_and_as_r(encoding: bytes, sign: int) -> None:
    point = encoding[:31] + bytes([encoding[31] | sign])
    with pytest.raises(BadKey, match="small order"):
        PublicKey(point)
    honest = PrivateKey.from_seed(bytes(32))
    signature = point + honest.sign(b"x")[32:]
    with pytest.raises(BadSignature, match="small order"):
        honest.public.verify(signature, b"x")


@pytest.mark.parametrize("excess", range(19))
def test_non_canonical_y_is_refused(excess: int) -> None:
    encoding = (_P + excess).to_bytes(32, "little")
    with pytest.raises(BadKey):
        PublicKey(encoding)
    honest = PrivateKey.from_seed(bytes(32))
    with pytest.raises(BadSignature):
        honest.public.verify(encoding + honest.sign(b"x")[32:], b"x")


def test_s_equal_to_l_is_refused_before_the_curve_arithmetic() -> None:
    key = PrivateKey.from_seed(bytes(range(32)))
    signature = key.sign(b"Maker's Fair")
    s = int.from_bytes(signature[32:], "little")
    with pytest.raises(BadSignature, match="S >= L"):
        key.public.verify(signature[:32] + (s + _L).to_bytes(32, "little"), b"Maker's Fair")


def test_a_y_with_no_point_on_the_curve_is_refused() -> None:
    y = next(y for y in range(2, 100) if _x_for(y) is None)
    with pytest.raises(BadKey, match="not a point on the curve"):
        PublicKey(y.to_bytes(32, "little"))
    with pytest.raises(BadKey, match="not a point on the curve"):
        parse_did(_did_of(b"\xed\x01" + y.to_bytes(32, "little")))


@given(encoding=st.binary(min_size=32, max_size=32))
def test_public_key_accepts_exactly_the_strict_encodings_of_points(encoding: bytes) -> None:
    unsigned = encoding[:31] + bytes([encoding[31] & 0x7F])
    y = int.from_bytes(unsigned, "little")
    strict = y < _P and unsigned not in keys._SMALL_ORDER and _x_for(y) is not None
    try:
        PublicKey(encoding)
        accepted = True
    except BadKey:
        accepted = False
    assert accepted == strict


@pytest.mark.parametrize("length", [0, 31, 33])
def test_public_key_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(BadKey, match="bytes"):
        PublicKey(bytes([9]) * length)


@pytest.mark.parametrize("length", [0, 63, 65])
def test_signature_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(BadSignature, match="64 bytes"):
        PrivateKey.generate().public.verify(bytes(length), b"")


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_seed_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(BadKey, match="32 bytes"):
        PrivateKey.from_seed(bytes(length))


@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=256))
def test_sign_then_verify(seed: bytes, message: bytes) -> None:
    key = PrivateKey.from_seed(seed)
    key.public.verify(key.sign(message), message)


@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=64),
    position=st.integers(0, 63),
    bit=st.integers(0, 7),
)
def test_any_flipped_signature_bit_is_refused(
    seed: bytes, message: bytes, position: int, bit: int
) -> None:
    key = PrivateKey.from_seed(seed)
    signature = bytearray(key.sign(message))
    signature[position] ^= 1 << bit
    with pytest.raises(BadSignature):
        key.public.verify(bytes(signature), message)


# --- did:key --------------------------------------------------------------------------


def test_did_key_of_rfc8032_test_1() -> None:
    # The multicodec prefix 0xed01 makes every Ed25519 did:key start with "z6Mk".
    key = PrivateKey.from_seed(bytes.fromhex(RFC8032[0][0]))
    assert key.did == "did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw"
    assert parse_did(key.did) == key.public


@given(seed=st.binary(min_size=32, max_size=32))
def test_did_key_round_trip(seed: bytes) -> None:
    key = PrivateKey.from_seed(seed)
    assert key.did.startswith("did:key:z6Mk")
    assert parse_did(key.did) == key.public
    assert PublicKey.from_did(key.did).did == key.did
    assert did_to_raw(key.did) == key.public.raw


def _did_of(payload: bytes) -> str:
    return "did:key:z" + base58.b58encode(payload).decode("ascii")


GOOD = PrivateKey.from_seed(bytes(range(32))).did
GOOD_RAW = PrivateKey.from_seed(bytes(range(32))).public.raw


@pytest.mark.parametrize(
    ("did", "reason"),
    [
        ("", "must start with"),
        ("did:web:hub.example", "must start with"),
        ("did:key:" + GOOD[len("did:key:z") :], "must start with"),  # missing multibase z
        ("DID:KEY:" + GOOD[len("did:key:") :], "must start with"),
        (GOOD[: len("did:key:z") + 3] + "0" + GOOD[len("did:key:z") + 4 :], "base58"),
        (GOOD[:-1] + "l", "base58"),
        (GOOD[:-1] + "é", "base58"),
        # Every Ed25519 did:key is 56 characters; any other length is refused undecoded.
        (_did_of(b"\xe7\x01" + bytes([2]) + GOOD_RAW), "56 characters, got 57"),  # secp256k1
        (_did_of(b"\xec\x01" + GOOD_RAW), "0xed01"),  # x25519 multicodec
        (_did_of(b"\x00\xed\x01" + GOOD_RAW), "56 characters, got 57"),  # a leading zero
        (_did_of(b"\xed\x01" + GOOD_RAW[:31]), "56 characters, got 55"),
        (_did_of(b"\xed\x01" + GOOD_RAW + b"\x00"), "56 characters, got 57"),
        (_did_of(b"\xed\x01"), "56 characters, got 12"),
        ("did:key:z", "56 characters, got 9"),
        (GOOD + " ", "56 characters, got 57"),
        ("did:key:z1" + GOOD[len("did:key:z") + 1 :], "0xed01|key bytes|canonically"),
    ],
)
def test_malformed_did_key_is_refused_with_a_reason(did: str, reason: str) -> None:
    with pytest.raises(MalformedDid, match=reason):
        parse_did(did)


@pytest.mark.parametrize("value", [None, 42, b"did:key:z6Mk"])
def test_did_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(MalformedDid):
        did_to_raw(value)  # type: ignore[arg-type]


def test_did_key_naming_a_small_order_point_is_refused() -> None:
    did = _did_of(b"\xed\x01" + bytes(32))
    assert did_to_raw(did) == bytes(32)  # well-formed as a string...
    with pytest.raises(BadKey, match="small order"):
        parse_did(did)  # ...but not a key anyone can hold


def test_long_did_is_cut_short_in_the_message() -> None:
    with pytest.raises(MalformedDid) as info:
        parse_did("did:web:" + "x" * 10_000)
    assert len(str(info.value)) < 200


@given(text=st.text(max_size=80))
def test_arbitrary_text_is_refused_with_an_identity_error(text: str) -> None:
    with contextlib.suppress(IdentityError):
        parse_did(text)


@given(payload=st.binary(max_size=40))
def test_arbitrary_did_key_payload_parses_or_raises_identity_error(payload: bytes) -> None:
    did = _did_of(payload)
    try:
        key = parse_did(did)
    except (MalformedDid, BadKey):
        return
    assert payload == b"\xed\x01" + key.raw
    assert key.did == did


def test_identity_errors_are_craftnet_errors() -> None:
    assert issubclass(MalformedDid, CraftnetError)
    assert issubclass(BadKey, CraftnetError)
    assert issubclass(BadSignature, CraftnetError)


def test_keys_compare_and_hash_by_their_bytes() -> None:
    a = PrivateKey.from_seed(bytes(32)).public
    b = PublicKey(a.raw)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != a.raw
    assert repr(a) == f"PublicKey({a.did!r})"
    assert "PrivateKey(" in repr(PrivateKey.from_seed(bytes(32)))
    assert PrivateKey.from_seed(bytes(32)).seed == bytes(32)


# --- bounded decoding: base58 never sees a did:key of the wrong length ----------------


def _refuse_decoding(*_: object) -> bytes:
    raise AssertionError("base58 decoding was reached for a did:key of the wrong length")


@given(length=st.integers(min_value=0, max_value=500_000).filter(lambda n: n != 47))
def test_did_key_of_any_other_length_is_refused_before_base58(length: int) -> None:
    # Base58 decoding is quadratic; a 400,000-character did took 225 s before the bound.
    did = "did:key:z" + "6" * length
    original = base58.b58decode
    base58.b58decode = _refuse_decoding
    try:
        with pytest.raises(MalformedDid, match=f"is 56 characters, got {len(did)}:"):
            did_to_raw(did)
    finally:
        base58.b58decode = original


def test_a_400000_character_did_is_refused_undecoded_with_a_short_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base58, "b58decode", _refuse_decoding)
    did = "did:key:z" + "6Mk" * 133_331
    assert len(did) == 400_002
    with pytest.raises(MalformedDid) as info:
        parse_did(did)
    assert str(info.value).startswith("an Ed25519 did:key is 56 characters, got 400002: ")
    assert len(str(info.value)) < 160


def test_every_did_key_is_56_characters() -> None:
    assert {len(PrivateKey.generate().did) for _ in range(200)} == {DID_KEY_LEN}
    assert len(_did_of(b"\xed\x01" + bytes(32))) == len(_did_of(b"\xed\x01" + b"\xff" * 32))


# --- libsodium first, OpenSSL for the verdict -----------------------------------------
# PublicKey.verify asks libsodium first and OpenSSL only when libsodium refuses. That is
# the old behaviour only if libsodium accepts nothing OpenSSL (after the strict checks)
# refuses: checked here on every vector and on signatures damaged at random.


def _openssl_only(key: PublicKey, signature: bytes, message: bytes) -> str | None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "crypto_sign_open", _refuse)
        return _verdict(key, signature, message)


def _refuse(signed: bytes, raw: bytes) -> bytes:
    from nacl.exceptions import BadSignatureError

    raise BadSignatureError("libsodium left out")


def _verdict(key: PublicKey, signature: bytes, message: bytes) -> str | None:
    try:
        key.verify(signature, message)
    except BadSignature as exc:
        return str(exc)
    return None


def test_every_vector_gets_the_same_verdict_with_and_without_libsodium() -> None:
    cases = [
        (c["pub_key"], c["signature"], c["message"])
        for c in SPECCHECK
        if c["rejected_at"] != "public_key"
    ]
    cases += [(p.values[0], p.values[1]["sig"], p.values[1]["msg"]) for p in WYCHEPROOF]
    for public, signature, message in cases:
        key = PublicKey(bytes.fromhex(public))
        sig, msg = bytes.fromhex(signature), bytes.fromhex(message)
        assert _verdict(key, sig, msg) == _openssl_only(key, sig, msg), (public, signature)


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64), st.integers(0, 63),
       st.integers(1, 255))
def test_a_damaged_signature_gets_the_same_verdict_with_and_without_libsodium(
    seed: bytes, message: bytes, at: int, flip: int
) -> None:
    key = PrivateKey.from_seed(seed)
    signature = key.sign(message)
    assert _verdict(key.public, signature, message) is None
    damaged = signature[:at] + bytes([signature[at] ^ flip]) + signature[at + 1 :]
    verdict = _verdict(key.public, damaged, message)
    assert verdict is not None and verdict == _openssl_only(key.public, damaged, message)
    assert _verdict(key.public, signature, message + b"!") is not None
