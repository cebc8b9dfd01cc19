"""Errors raised by the identity package."""

from craftnet.errors import CraftnetError


class IdentityError(CraftnetError):
    """Something about a key, an identifier or a signature is wrong."""


class MalformedDid(IdentityError):
    """A did:key string could not be parsed."""


class BadKey(IdentityError):
    """A public or private key is malformed, non-canonical or of small order."""


class BadSignature(IdentityError):
    """A signature does not verify, or is not in strict canonical form."""


class KeystoreError(IdentityError):
    """The keystore could not be read or written (missing key, wrong passphrase, ...)."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not decrypt the key."""


class SuccessionError(IdentityError):
    """A key succession or revocation is invalid or makes a key unusable."""
