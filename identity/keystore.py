"""The keystore: named Ed25519 keys on disk, encrypted at rest with a passphrase.

A node keeps its keys in the ``keys/`` folder of its home (folder mode 0700), one file
per named key (``hub.key``, ``amaia.key``, ...; mode 0600). A key file is a small JSON
document, version 1::

    {
      "format": "craftnet-key",
      "version": 1,
      "did": "did:key:z6Mk...",
      "created": 1764072000,
      "encrypted": true,
      "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<base64, 16 bytes>"},
      "cipher": {"name": "chacha20-poly1305", "nonce": "<base64, 12 bytes>"},
      "ciphertext": "<base64: the 32-byte seed, encrypted, + 16-byte tag>"
    }

The did and the creation time are in clear so that listing needs no passphrase; they
and the KDF parameters are bound to the ciphertext as associated data, so editing any
of them makes decryption fail. An unencrypted key (for demos and development only, and
only when the caller says so explicitly) has ``"encrypted": false`` and a ``"seed"``
field instead of kdf/cipher/ciphertext.

An exported key is the same document with a fresh salt and nonce under the export
passphrase, so an artisan moving to another hub can carry it on a USB stick and import
it there (or drop it into that hub's ``keys/`` folder as it is).

Files are written atomically: a temporary file in the same folder, fsync, then a rename
(or a hard link when an existing key must not be replaced), then an fsync of the folder.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import secrets
import stat
import time
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from craftnet.identity.errors import BadKey, KeystoreError, MalformedDid, WrongPassphrase
from craftnet.identity.keys import KEY_SIZE, PrivateKey, did_to_raw

FORMAT: Final = "craftnet-key"
VERSION: Final = 1
SUFFIX: Final = ".key"
# Artisans' keys (as opposed to the hub's own) are named ``artisan.<handle>``.
ARTISAN_PREFIX: Final = "artisan."
# scrypt cost: 2**15 takes about 70-100 ms and 32 MiB on a small hub computer. Tests
# pass a lower cost to the Keystore; files record their own parameters.
DEFAULT_SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
# What a key file may ask for: enough for paranoid settings, not enough for a hostile
# file to make loading eat gigabytes of memory or minutes of CPU.
MIN_SCRYPT_N: Final = 2**10
MAX_SCRYPT_MEMORY: Final = 256 * 2**20
MAX_FILE_SIZE: Final = 16 * 1024
SALT_SIZE: Final = 16
NONCE_SIZE: Final = 12
PLAINTEXT_WARNING: Final = "UNENCRYPTED private key: for demos and development only"
_COMMON_FIELDS: Final = frozenset({"format", "version", "did", "created", "encrypted"})
_ENCRYPTED_FIELDS: Final = _COMMON_FIELDS | {"kdf", "cipher", "ciphertext"}
_PLAINTEXT_FIELDS: Final = _COMMON_FIELDS | {"warning", "seed"}
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class KeystorePermissionWarning(UserWarning):
    """A key file or the keys folder was readable by others; the keystore tightened it."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the keystore knows about a key without its passphrase."""

    name: str
    did: str
    encrypted: bool
    created: int


def check_name(name: str) -> str:
    """Return ``name`` if it can name a key file, else raise :class:`KeystoreError`."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise KeystoreError(
            f"invalid key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (for example 'hub' or 'amaia-etxeberria')"
        )
    return name


def _passphrase_bytes(passphrase: str) -> bytes:
    if not isinstance(passphrase, str) or passphrase == "":
        raise KeystoreError(
            "a passphrase must be a non-empty string; to store a key unencrypted "
            "(development only) pass passphrase=None and allow_plaintext=True"
        )
    # The same passphrase typed on two systems may arrive composed or decomposed.
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str, size: int, where: str) -> bytes:
    if not isinstance(value, str):
        raise KeystoreError(f"{where}: {what} must be a base64 string")
    if len(value) != 4 * ((size + 2) // 3):
        # Checked before decoding: only the one length that holds ``size`` bytes is read.
        raise KeystoreError(
            f"{where}: {what} is {len(value)} characters of base64, not the {size} bytes expected"
        )
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise KeystoreError(f"{where}: {what} is not valid base64") from exc
    if len(data) != size:
        raise KeystoreError(f"{where}: {what} is {len(data)} bytes, expected {size}")
    if _b64(data) != value:
        # Unused low bits before '=' padding would let two texts carry the same bytes.
        raise KeystoreError(f"{where}: {what} is not canonical base64")
    return data


def _scrypt_memory(n: int, r: int) -> int:
    return 128 * n * r


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def _associated_data(document: dict[str, Any]) -> bytes:
    """The clear fields an attacker must not be able to change unnoticed."""
    bound = {k: document[k] for k in ("format", "version", "did", "created", "kdf", "cipher")}
    return json.dumps(bound, sort_keys=True, separators=(",", ":")).encode("utf-8")


def seal(
    key: PrivateKey,
    passphrase: str | None,
    *,
    created: int,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> bytes:
    """Serialize ``key`` as a version-1 key document; encrypted unless passphrase is None."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "did": key.did,
        "created": created,
    }
    if passphrase is None:
        document["encrypted"] = False
        document["warning"] = PLAINTEXT_WARNING
        document["seed"] = _b64(key.seed)
    else:
        secret = _passphrase_bytes(passphrase)
        if scrypt_n < MIN_SCRYPT_N or scrypt_n & (scrypt_n - 1):
            raise KeystoreError(f"scrypt cost n must be a power of two >= {MIN_SCRYPT_N}")
        salt, nonce = secrets.token_bytes(SALT_SIZE), secrets.token_bytes(NONCE_SIZE)
        document["encrypted"] = True
        document["kdf"] = {
            "name": "scrypt",
            "n": scrypt_n,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": _b64(salt),
        }
        document["cipher"] = {"name": "chacha20-poly1305", "nonce": _b64(nonce)}
        cipher = ChaCha20Poly1305(_derive(secret, salt, scrypt_n, SCRYPT_R, SCRYPT_P))
        ciphertext = cipher.encrypt(nonce, key.seed, _associated_data(document))
        document["ciphertext"] = _b64(ciphertext)
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _parse(data: bytes, where: str) -> dict[str, Any]:
    """Decode and shape-check a key document, without decrypting it."""
    if len(data) > MAX_FILE_SIZE:
        raise KeystoreError(f"{where}: {len(data)} bytes is too large for a key file")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        # RecursionError: 16 KiB of '[' nests deeper than Python's JSON parser goes.
        raise KeystoreError(
            f"{where}: not a readable key file (truncated or corrupted?): {exc}"
        ) from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeystoreError(f"{where}: not a craftnet key file (no format {FORMAT!r})")
    version = document.get("version")
    if version != VERSION:
        raise KeystoreError(
            f"{where}: key file format version {version!r} is not supported by this "
            f"craftnet (it reads version {VERSION}); upgrade craftnet to read it"
        )
    did = document.get("did")
    if not isinstance(did, str):
        raise KeystoreError(f"{where}: the key file has no did")
    try:
        did_to_raw(did)
    except MalformedDid as exc:
        raise KeystoreError(f"{where}: the key file's did is damaged: {exc}") from exc
    created = document.get("created")
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        raise KeystoreError(f"{where}: 'created' must be a non-negative integer")
    encrypted = document.get("encrypted")
    if not isinstance(encrypted, bool):
        raise KeystoreError(f"{where}: 'encrypted' must be true or false")
    expected = _ENCRYPTED_FIELDS if encrypted else _PLAINTEXT_FIELDS
    if set(document) != expected:
        odd = sorted(set(document) ^ expected)
        raise KeystoreError(f"{where}: unexpected or missing fields {odd} in the key file")
    if encrypted:
        _check_encryption_fields(document, where)
    elif document["warning"] != PLAINTEXT_WARNING:
        raise KeystoreError(f"{where}: the unencrypted key file's warning was altered")
    return document


def _check_encryption_fields(document: dict[str, Any], where: str) -> None:
    kdf, cipher = document.get("kdf"), document.get("cipher")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise KeystoreError(f"{where}: unsupported key derivation (expected scrypt)")
    if set(kdf) != {"name", "n", "r", "p", "salt"}:
        raise KeystoreError(f"{where}: unexpected scrypt fields {sorted(kdf)}")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n, r, p)):
        raise KeystoreError(f"{where}: scrypt parameters n, r, p must be positive integers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if n < MIN_SCRYPT_N or n & (n - 1) or p > 16 or _scrypt_memory(n, r) > MAX_SCRYPT_MEMORY:
        raise KeystoreError(
            f"{where}: scrypt parameters n={n} r={r} p={p} are out of the accepted range"
        )
    _unb64(kdf.get("salt"), "the salt", SALT_SIZE, where)
    if not isinstance(cipher, dict) or cipher.get("name") != "chacha20-poly1305":
        raise KeystoreError(f"{where}: unsupported cipher (expected chacha20-poly1305)")
    if set(cipher) != {"name", "nonce"}:
        raise KeystoreError(f"{where}: unexpected cipher fields {sorted(cipher)}")
    _unb64(cipher.get("nonce"), "the nonce", NONCE_SIZE, where)
    _unb64(document.get("ciphertext"), "the ciphertext", KEY_SIZE + 16, where)


def unseal(data: bytes, passphrase: str | None, *, where: str = "key file") -> PrivateKey:
    """Read a key document and return its key; the passphrase is ignored if unencrypted."""
    document = _parse(data, where)
    if document["encrypted"]:
        if passphrase is None:
            raise KeystoreError(f"{where} is encrypted: a passphrase is needed to open it")
        kdf, cipher = document["kdf"], document["cipher"]
        salt = _unb64(kdf["salt"], "the salt", SALT_SIZE, where)
        nonce = _unb64(cipher["nonce"], "the nonce", NONCE_SIZE, where)
        ciphertext = _unb64(document["ciphertext"], "the ciphertext", KEY_SIZE + 16, where)
        secret = _derive(_passphrase_bytes(passphrase), salt, kdf["n"], kdf["r"], kdf["p"])
        try:
            seed = ChaCha20Poly1305(secret).decrypt(nonce, ciphertext, _associated_data(document))
        except InvalidTag:
            raise WrongPassphrase(
                f"wrong passphrase for {where} (or the file was altered); "
                "check the passphrase and try again"
            ) from None
    else:
        seed = _unb64(document["seed"], "the seed", KEY_SIZE, where)
    try:
        key = PrivateKey.from_seed(seed)
    except BadKey as exc:
        raise KeystoreError(f"{where}: the stored seed is unusable: {exc}") from exc
    if key.did != document["did"]:
        raise KeystoreError(
            f"{where}: the stored key does not match the file's did {document['did']}; "
            "the file is corrupted"
        )
    return key


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # folders cannot be opened for fsync there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Keystore:
    """Named keys in one folder, each in its own (usually encrypted) file."""

    def __init__(self, path: str | os.PathLike[str], *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        self.path = Path(path)
        self.scrypt_n = scrypt_n

    @classmethod
    def for_home(
        cls, home: str | os.PathLike[str], *, scrypt_n: int = DEFAULT_SCRYPT_N
    ) -> Keystore:
        """The keystore of a node whose home folder is ``home`` (its ``keys/`` subfolder)."""
        return cls(Path(home) / "keys", scrypt_n=scrypt_n)

    # -- paths and permissions -----------------------------------------------------

    def _file(self, name: str) -> Path:
        return self.path / (check_name(name) + SUFFIX)

    def _ensure_folder(self) -> None:
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise KeystoreError(f"cannot create the keys folder {self.path}: {exc}") from exc
        self._tighten(self.path, 0o700)

    def _tighten(self, path: Path, mode: int) -> None:
        """Warn about and remove group/other permissions on ``path``."""
        try:
            current = stat.S_IMODE(path.stat().st_mode)
        except OSError as exc:
            raise KeystoreError(f"cannot inspect {path}: {exc}") from exc
        if current & 0o077:
            warnings.warn(
                f"{path} was readable or writable by other users (mode {current:o}); "
                f"changed it to {mode:o}",
                KeystorePermissionWarning,
                stacklevel=3,
            )
            try:
                path.chmod(mode)
            except OSError as exc:
                raise KeystoreError(
                    f"{path} is accessible to other users and could not be fixed: {exc}; "
                    f"run: chmod {mode:o} {path}"
                ) from exc

    def _write(self, name: str, data: bytes, *, replace: bool) -> None:
        """Atomically write a key file; refuse to clobber unless ``replace``."""
        self._ensure_folder()
        final = self._file(name)
        temporary = self.path / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if replace:
                os.replace(temporary, final)
            else:
                try:
                    # A hard link fails if the name exists: no check-then-write race.
                    os.link(temporary, final)
                except FileExistsError:
                    raise KeystoreError(
                        f"a key named {name!r} already exists in {self.path}; "
                        "choose another name or delete the old key first"
                    ) from None
                except OSError:
                    # Some filesystems (FAT on a USB stick) have no hard links.
                    if final.exists():
                        raise KeystoreError(
                            f"a key named {name!r} already exists in {self.path}"
                        ) from None
                    os.replace(temporary, final)
            _fsync_dir(self.path)
        except OSError as exc:
            raise KeystoreError(f"cannot write key {name!r} to {self.path}: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def _read(self, name: str) -> bytes:
        path = self._file(name)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_SIZE + 1)
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none"
            raise KeystoreError(
                f"no key named {name!r} in {self.path} (keys there: {known}); "
                "create it or import it first"
            ) from None
        except OSError as exc:
            raise KeystoreError(f"cannot read key {name!r} from {path}: {exc}") from exc
        self._tighten(self.path, 0o700)
        self._tighten(path, 0o600)
        return data

    # -- the API -------------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of the stored keys, sorted."""
        return [name for name, _ in self._entries()]

    def _entries(self) -> Iterator[tuple[str, Path]]:
        if not self.path.is_dir():
            return
        for path in sorted(self.path.glob("*" + SUFFIX)):
            name = path.name[: -len(SUFFIX)]
            if _NAME.fullmatch(name) and path.is_file():
                yield name, path

    def has(self, name: str) -> bool:
        """Whether a key called ``name`` is stored."""
        return self._file(name).is_file()

    def create(
        self, name: str, passphrase: str | None, *, allow_plaintext: bool = False
    ) -> PrivateKey:
        """Generate a new key, store it under ``name`` and return it."""
        key = PrivateKey.generate()
        self._store(name, key, passphrase, allow_plaintext=allow_plaintext, replace=False)
        return key

    def _store(
        self,
        name: str,
        key: PrivateKey,
        passphrase: str | None,
        *,
        allow_plaintext: bool,
        replace: bool,
        created: int | None = None,
    ) -> None:
        check_name(name)
        if passphrase is None and not allow_plaintext:
            raise KeystoreError(
                f"refusing to store key {name!r} without a passphrase; give a passphrase, "
                "or pass allow_plaintext=True for a demo or development hub"
            )
        stamp = int(time.time()) if created is None else created
        data = seal(key, passphrase, created=stamp, scrypt_n=self.scrypt_n)
        self._write(name, data, replace=replace)

    def load(self, name: str, passphrase: str | None) -> PrivateKey:
        """Open the key called ``name``; raises :class:`WrongPassphrase` on a bad passphrase."""
        return unseal(self._read(name), passphrase, where=f"key {name!r}")

    def info(self, name: str) -> KeyInfo:
        """What is known about ``name`` without its passphrase."""
        document = _parse(self._read(name), f"key {name!r}")
        return KeyInfo(name, document["did"], document["encrypted"], document["created"])

    def list(self) -> list[KeyInfo]:
        """Every stored key, sorted by name; a damaged file raises :class:`KeystoreError`."""
        return [self.info(name) for name in self.names()]

    def import_key(
        self,
        name: str,
        seed_or_exported: bytes,
        passphrase: str | None,
        *,
        export_passphrase: str | None = None,
        allow_plaintext: bool = False,
    ) -> PrivateKey:
        """Store a key given as a 32-byte seed or as an exported key file."""
        if len(seed_or_exported) == KEY_SIZE:
            key = PrivateKey.from_seed(seed_or_exported)
            created = None
        else:
            document = _parse(seed_or_exported, "the imported key")
            if document["encrypted"] and export_passphrase is None:
                raise KeystoreError(
                    "the imported key is encrypted: give the passphrase it was exported with "
                    "(export_passphrase)"
                )
            key = unseal(seed_or_exported, export_passphrase, where="the imported key")
            created = document["created"]
        for info in self.list():
            if info.did == key.did:
                raise KeystoreError(
                    f"this key ({key.did}) is already stored as {info.name!r}; "
                    "use that name instead of importing it again"
                )
        self._store(
            name,
            key,
            passphrase,
            allow_plaintext=allow_plaintext,
            replace=False,
            created=created,
        )
        return key

    def export(self, name: str, passphrase: str | None, export_passphrase: str) -> bytes:
        """An encrypted copy of key ``name`` under ``export_passphrase``, to carry elsewhere."""
        if export_passphrase is None:
            raise KeystoreError("an exported key is always encrypted: give an export passphrase")
        key = self.load(name, passphrase)
        created = self.info(name).created
        return seal(key, export_passphrase, created=created, scrypt_n=self.scrypt_n)

    def change_passphrase(
        self,
        name: str,
        passphrase: str | None,
        new_passphrase: str | None,
        *,
        allow_plaintext: bool = False,
    ) -> None:
        """Re-encrypt key ``name`` under ``new_passphrase`` (atomically)."""
        key = self.load(name, passphrase)
        created = self.info(name).created
        self._store(
            name,
            key,
            new_passphrase,
            allow_plaintext=allow_plaintext,
            replace=True,
            created=created,
        )

    def delete(self, name: str) -> None:
        """Remove key ``name``; the key is gone for good unless it was exported."""
        path = self._file(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise KeystoreError(f"no key named {name!r} in {self.path}; nothing deleted") from None
        except OSError as exc:
            raise KeystoreError(f"cannot delete key {name!r}: {exc}") from exc
        _fsync_dir(self.path)
