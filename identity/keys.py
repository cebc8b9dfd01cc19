"""Ed25519 keys, did:key identifiers and strict signature verification.

Signing and the curve arithmetic of verification go through ``cryptography``
(OpenSSL). OpenSSL's verification is cofactorless but lenient about encodings, so
before calling it we apply the checks of the "strict" rules from *Taming the many
EdDSAs* (Chalkias et al., 2020), as libsodium does: the public key A and the
signature's R must be canonical encodings (y < p) and must not be points of small
order, and S must be canonical (S < L). Without them, a signature made with a
small-order key "verifies" for many messages.

A signature that passes those checks is verified with libsodium (PyNaCl) first: its
verification is the same cofactorless check with exactly those strict rules, and it
took half as long as OpenSSL's here (58 against 114 µs a check, in the process of a hub
fetching 1,000 records, where it was the largest single cost). Only when libsodium says
no is OpenSSL asked, so a refusal is OpenSSL's, worded as before. That the two accept
the same signatures rests on their computing the same equation after the same rules;
tests/identity/test_keys.py checks it on every vector and on damaged signatures.
"""

from __future__ import annotations

import functools
from typing import Final

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from craftnet.identity.errors import BadKey, BadSignature, MalformedDid

ED25519_MULTICODEC: Final = b"\xed\x01"
DID_KEY_PREFIX: Final = "did:key:z"
KEY_SIZE: Final = 32
# base58btc of the 34 bytes 0xed01 + key is always 47 characters (0xed01 fixes the top
# digits), so every Ed25519 did:key is exactly this long. Checking the length first keeps
# base58, whose decoding is quadratic in its input, away from anything longer.
DID_KEY_LEN: Final = len(DID_KEY_PREFIX) + 47
SIGNATURE_SIZE: Final = 64
_P: Final = 2**255 - 19
_L: Final = 2**252 + 27742317777372353535851937790883648493
_D: Final = -121665 * pow(121666, -1, _P) % _P
# Encodings (sign bit cleared) of the points of order 1, 2, 4 and 8, including the
# non-canonical encodings y = p and y = p + 1 of the points y = 0 and y = 1.
_SMALL_ORDER: Final = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)


def _point_problem(encoded: bytes) -> str | None:
    """Say why ``encoded`` is not a strict Ed25519 point encoding, or return None."""
    if len(encoded) != KEY_SIZE:
        return f"is {len(encoded)} bytes, not {KEY_SIZE}"
    unsigned = encoded[:31] + bytes([encoded[31] & 0x7F])
    if unsigned in _SMALL_ORDER:
        return "is a point of small order"
    if int.from_bytes(unsigned, "little") >= _P:
        return "is not canonically encoded (y >= p)"
    return None


# 2**17 entries (about 20 MiB when full): a simulated run of 100,000 hubs parses every
# hub's key in each of its neighbours' hellos, and a 4,096-entry LRU cycled without a hit.
@functools.lru_cache(maxsize=1 << 17)
def _on_curve(encoded: bytes) -> bool:
    """Whether some x completes the encoded y to a point (x^2 = (y^2-1)/(dy^2+1) mod p)."""
    y = int.from_bytes(encoded[:31] + bytes([encoded[31] & 0x7F]), "little")
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    # Euler's criterion on u/v, which is a square exactly when u*v is (v is never 0);
    # u = 0 (x = 0) only happens for y = +-1, already refused as small order. Cached
    # because a hub meets the same few hundred authors' keys again and again.
    return pow(u * v, (_P - 1) // 2, _P) == 1


class PublicKey:
    """An Ed25519 public key, checked to be canonical and not of small order."""

    __slots__ = ("_did", "_key", "raw")

    def __init__(self, raw: bytes) -> None:
        raw = bytes(raw)
        problem = _point_problem(raw)
        if problem is not None:
            raise BadKey(f"Ed25519 public key {problem}")
        # OpenSSL imports any 32 bytes as a public key; a did:key must name a real point.
        if not _on_curve(raw):
            raise BadKey("Ed25519 public key is not a point on the curve")
        try:
            self._key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise BadKey(f"Ed25519 public key is not a point on the curve: {exc}") from exc
        self.raw = raw
        self._did: str | None = None

    @property
    def did(self) -> str:
        """The ``did:key`` identifier of this key."""
        did = self._did
        if did is None:
            # Base58 is slow and a hub names itself in every hello and announcement.
            encoded = base58.b58encode(ED25519_MULTICODEC + self.raw).decode("ascii")
            did = self._did = DID_KEY_PREFIX + encoded
        return did

    @classmethod
    def from_did(cls, did: str) -> PublicKey:
        """Parse a ``did:key:z6Mk...`` identifier of an Ed25519 key."""
        return cls(did_to_raw(did))

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`BadSignature` unless ``signature`` is a strict signature of ``message``."""
        if len(signature) != SIGNATURE_SIZE:
            raise BadSignature(f"an Ed25519 signature is 64 bytes, got {len(signature)}")
        problem = _point_problem(signature[:32])
        if problem is not None:
            raise BadSignature(f"signature R {problem}")
        if int.from_bytes(signature[32:], "little") >= _L:
            raise BadSignature("signature S is not reduced (S >= L): malleable form refused")
        try:
            crypto_sign_open(signature + message, self.raw)
        except (BadSignatureError, ValueError, TypeError):
            pass  # OpenSSL gives the verdict (and the same refusal as always)
        else:
            return
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise BadSignature(f"signature does not verify for {self.did}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.did!r})"


class PrivateKey:
    """An Ed25519 signing key."""

    __slots__ = ("_key", "public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = PublicKey(raw)

    @classmethod
    def generate(cls) -> PrivateKey:
        """Make a new random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        """Load a key from its 32-byte seed."""
        if len(seed) != KEY_SIZE:
            raise BadKey(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def seed(self) -> bytes:
        """The 32-byte seed; handle with care."""
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def did(self) -> str:
        """The ``did:key`` of the public half."""
        return self.public.did

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``; returns the 64-byte signature."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"PrivateKey({self.did!r})"


def did_to_raw(did: str) -> bytes:
    """Return the raw 32-byte Ed25519 key named by ``did``, or raise :class:`MalformedDid`.

    The length is checked before any decoding, so the work done on a hostile string is
    constant however long it is.
    """
    if not isinstance(did, str) or not did.startswith(DID_KEY_PREFIX):
        raise MalformedDid(
            f"not an Ed25519 did:key (must start with {DID_KEY_PREFIX!r}): {_shown(did)}"
        )
    if len(did) != DID_KEY_LEN:
        raise MalformedDid(
            f"an Ed25519 did:key is {DID_KEY_LEN} characters, got {len(did)}: {_shown(did)}"
        )
    try:
        decoded = base58.b58decode(did[len(DID_KEY_PREFIX) :].encode("ascii"))
    except ValueError as exc:
        raise MalformedDid(f"did:key is not valid base58btc: {_shown(did)}") from exc
    if not decoded.startswith(ED25519_MULTICODEC):
        raise MalformedDid(
            f"did:key does not name an Ed25519 key (multicodec 0xed01): {_shown(did)}"
        )
    raw = decoded[len(ED25519_MULTICODEC) :]
    if len(raw) != KEY_SIZE:
        raise MalformedDid(f"did:key holds {len(raw)} key bytes, not {KEY_SIZE}: {_shown(did)}")
    expected = DID_KEY_PREFIX + base58.b58encode(decoded).decode("ascii")
    if expected != did:
        raise MalformedDid(f"did:key is not canonically encoded: {_shown(did)}")
    return raw


def _shown(value: object) -> str:
    """The start of ``value`` for a message, cut before ``repr`` so a huge string costs nothing."""
    return repr(value[:80] if isinstance(value, str | bytes) else value)[:80]


def parse_did(did: str) -> PublicKey:
    """Parse a did:key into a checked :class:`PublicKey`."""
    return PublicKey(did_to_raw(did))
