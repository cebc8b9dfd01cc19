"""The keystore, with real files in a temporary folder and hostile key files."""

from __future__ import annotations

import json
import os
import stat
import time
import unicodedata
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.identity import keystore as ks
from craftnet.identity.errors import KeystoreError, WrongPassphrase
from craftnet.identity.keys import PrivateKey
from craftnet.identity.keystore import (
    DEFAULT_SCRYPT_N,
    KeyInfo,
    Keystore,
    KeystorePermissionWarning,
    seal,
    unseal,
)

# Tests use a low scrypt cost; one test below exercises the default cost.
FAST = 2**10
PASS = "clay, slip and a slow kiln"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "hub-home"


@pytest.fixture
def store(home: Path) -> Keystore:
    return Keystore.for_home(home, scrypt_n=FAST)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the happy path -------------------------------------------------------------------


def test_create_then_load_gives_the_same_key(store: Keystore, home: Path) -> None:
    key = store.create("hub", PASS)
    loaded = store.load("hub", PASS)
    assert loaded.seed == key.seed and loaded.did == key.did
    assert store.path == home / "keys"
    assert (home / "keys" / "hub.key").is_file()


def test_files_are_private_to_the_owner(store: Keystore) -> None:
    store.create("hub", PASS)
    assert _mode(store.path) == 0o700
    assert _mode(store.path / "hub.key") == 0o600


def test_the_seed_never_appears_in_the_file(store: Keystore) -> None:
    key = store.create("hub", PASS)
    text = (store.path / "hub.key").read_text()
    document = json.loads(text)
    assert document["encrypted"] is True and document["did"] == key.did
    assert document["kdf"]["n"] == FAST and document["cipher"]["name"] == "chacha20-poly1305"
    assert "seed" not in document
    assert key.seed.hex() not in text
    assert ks._b64(key.seed) not in text


def test_listing_needs_no_passphrase(store: Keystore) -> None:
    before = int(time.time())
    hub = store.create("hub", PASS)
    potter = store.create("amaia-etxeberria", "another passphrase")
    infos = store.list()
    assert [i.name for i in infos] == ["amaia-etxeberria", "hub"]
    assert infos[0] == KeyInfo("amaia-etxeberria", potter.did, True, infos[0].created)
    assert infos[1].did == hub.did
    assert all(before <= i.created <= int(time.time()) for i in infos)
    assert store.names() == ["amaia-etxeberria", "hub"]
    assert store.has("hub") and not store.has("workshop")


def test_an_empty_or_missing_keystore_lists_nothing(tmp_path: Path) -> None:
    assert Keystore(tmp_path / "nowhere", scrypt_n=FAST).list() == []


def test_two_keys_under_one_passphrase_get_different_salts(store: Keystore) -> None:
    store.create("a", PASS)
    store.create("b", PASS)
    salts = {json.loads((store.path / f"{n}.key").read_text())["kdf"]["salt"] for n in "ab"}
    assert len(salts) == 2


def test_passphrases_are_compared_after_unicode_normalization(store: Keystore) -> None:
    composed = unicodedata.normalize("NFC", "Tōkyō cerámica")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    key = store.create("hub", composed)
    assert store.load("hub", decomposed).did == key.did


def test_default_cost_is_scrypt_2_15(tmp_path: Path) -> None:
    assert DEFAULT_SCRYPT_N == 2**15
    real = Keystore(tmp_path / "keys")
    key = real.create("hub", PASS)
    assert json.loads((real.path / "hub.key").read_text())["kdf"]["n"] == 2**15
    assert real.load("hub", PASS).did == key.did


# --- unencrypted keys (demo and development) ------------------------------------------


def test_no_passphrase_is_refused_unless_explicitly_allowed(store: Keystore) -> None:
    with pytest.raises(KeystoreError, match="allow_plaintext"):
        store.create("demo", None)
    assert not store.has("demo")


def test_plaintext_key_says_so_in_the_file(store: Keystore) -> None:
    key = store.create("demo", None, allow_plaintext=True)
    document = json.loads((store.path / "demo.key").read_text())
    assert document["encrypted"] is False
    assert "UNENCRYPTED" in document["warning"]
    assert store.load("demo", None).did == key.did
    assert store.list()[0].encrypted is False


def test_empty_passphrase_is_refused(store: Keystore) -> None:
    with pytest.raises(KeystoreError, match="non-empty"):
        store.create("hub", "")


def test_encrypted_key_without_passphrase_says_one_is_needed(store: Keystore) -> None:
    store.create("hub", PASS)
    with pytest.raises(KeystoreError, match="passphrase is needed"):
        store.load("hub", None)


# --- mistakes a user makes ------------------------------------------------------------


def test_wrong_passphrase(store: Keystore) -> None:
    store.create("hub", PASS)
    with pytest.raises(WrongPassphrase, match="wrong passphrase for key 'hub'"):
        store.load("hub", "clay, slip and a fast kiln")


def test_missing_key_names_the_keys_that_exist(store: Keystore) -> None:
    store.create("hub", PASS)
    with pytest.raises(KeystoreError, match=r"no key named 'artisan'.*keys there: hub"):
        store.load("artisan", PASS)


def test_creating_an_existing_name_keeps_the_old_key(store: Keystore) -> None:
    first = store.create("hub", PASS)
    with pytest.raises(KeystoreError, match="already exists"):
        store.create("hub", PASS)
    assert store.load("hub", PASS).did == first.did


@pytest.mark.parametrize(
    "name", ["", ".hidden", "../escape", "a/b", "a\\b", "x" * 65, "naïve", "-dash", "a b"]
)
def test_key_names_that_could_escape_or_confuse_are_refused(store: Keystore, name: str) -> None:
    with pytest.raises(KeystoreError, match="invalid key name"):
        store.create(name, PASS)
    assert not store.path.exists() or list(store.path.iterdir()) == []


def test_delete(store: Keystore) -> None:
    store.create("hub", PASS)
    store.delete("hub")
    assert not store.has("hub")
    with pytest.raises(KeystoreError, match="nothing deleted"):
        store.delete("hub")


def test_change_passphrase(store: Keystore) -> None:
    key = store.create("hub", PASS)
    created = store.info("hub").created
    store.change_passphrase("hub", PASS, "a new passphrase")
    with pytest.raises(WrongPassphrase):
        store.load("hub", PASS)
    assert store.load("hub", "a new passphrase").did == key.did
    assert store.info("hub").created == created
    with pytest.raises(WrongPassphrase):
        store.change_passphrase("hub", PASS, "x")


def test_no_temporary_files_are_left_behind(store: Keystore) -> None:
    store.create("hub", PASS)
    store.change_passphrase("hub", PASS, "other")
    with pytest.raises(KeystoreError):
        store.create("hub", PASS)
    assert sorted(p.name for p in store.path.iterdir()) == ["hub.key"]


def test_stray_files_in_the_folder_are_not_keys(store: Keystore) -> None:
    store.create("hub", PASS)
    (store.path / ".hub.1234.tmp").write_text("half-written")
    (store.path / "notes.txt").write_text("the kiln key is in the drawer")
    (store.path / "sub.key").mkdir()
    assert store.names() == ["hub"]


# --- moving an artisan to another hub -------------------------------------------------


def test_export_then_import_on_another_hub(tmp_path: Path) -> None:
    old_hub = Keystore(tmp_path / "old" / "keys", scrypt_n=FAST)
    new_hub = Keystore(tmp_path / "new" / "keys", scrypt_n=FAST)
    key = old_hub.create("amaia", PASS)
    exported = old_hub.export("amaia", PASS, "for the usb stick")
    assert key.seed.hex() not in exported.decode()
    imported = new_hub.import_key(
        "amaia", exported, "the new hub's passphrase", export_passphrase="for the usb stick"
    )
    assert imported.did == key.did
    assert new_hub.load("amaia", "the new hub's passphrase").seed == key.seed
    assert new_hub.info("amaia").created == old_hub.info("amaia").created


def test_an_exported_file_is_itself_a_key_file(tmp_path: Path, store: Keystore) -> None:
    key = store.create("amaia", PASS)
    exported = store.export("amaia", PASS, "for the usb stick")
    other = Keystore(tmp_path / "other", scrypt_n=FAST)
    other.path.mkdir(mode=0o700)
    (other.path / "amaia.key").write_bytes(exported)
    os.chmod(other.path / "amaia.key", 0o600)
    assert other.load("amaia", "for the usb stick").did == key.did


def test_import_needs_the_export_passphrase(tmp_path: Path, store: Keystore) -> None:
    store.create("amaia", PASS)
    exported = store.export("amaia", PASS, "for the usb stick")
    other = Keystore(tmp_path / "other", scrypt_n=FAST)
    with pytest.raises(KeystoreError, match="export_passphrase"):
        other.import_key("amaia", exported, PASS)
    with pytest.raises(WrongPassphrase):
        other.import_key("amaia", exported, PASS, export_passphrase="wrong")
    assert not other.has("amaia")


@pytest.mark.parametrize("export_passphrase", [None, ""])
def test_exports_are_always_encrypted(store: Keystore, export_passphrase: str | None) -> None:
    store.create("amaia", PASS)
    with pytest.raises(KeystoreError, match="passphrase"):
        store.export("amaia", PASS, export_passphrase)  # type: ignore[arg-type]


def test_import_a_seed(store: Keystore) -> None:
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    key = store.import_key("rfc", seed, PASS)
    assert key.did == "did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw"
    assert store.load("rfc", PASS).seed == seed


def test_importing_a_key_twice_is_refused(store: Keystore) -> None:
    key = store.create("amaia", PASS)
    with pytest.raises(KeystoreError, match="already stored as 'amaia'"):
        store.import_key("amaia-again", key.seed, PASS)


@pytest.mark.parametrize("data", [b"", b"\x00" * 31, b"\x00" * 33, b"not a key file"])
def test_importing_garbage_is_refused(store: Keystore, data: bytes) -> None:
    with pytest.raises(KeystoreError):
        store.import_key("x", data, PASS)


# --- permissions ----------------------------------------------------------------------


def test_loose_file_permissions_are_reported_and_fixed(store: Keystore) -> None:
    store.create("hub", PASS)
    os.chmod(store.path / "hub.key", 0o644)
    with pytest.warns(KeystorePermissionWarning, match="changed it to 600"):
        store.load("hub", PASS)
    assert _mode(store.path / "hub.key") == 0o600


def test_loose_folder_permissions_are_reported_and_fixed(store: Keystore) -> None:
    store.create("hub", PASS)
    os.chmod(store.path, 0o755)
    with pytest.warns(KeystorePermissionWarning, match="changed it to 700"):
        store.list()
    assert _mode(store.path) == 0o700


def test_tight_permissions_give_no_warning(store: Keystore) -> None:
    store.create("hub", PASS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.load("hub", PASS)


# --- hostile and damaged files --------------------------------------------------------


def _sealed(passphrase: str | None = PASS) -> tuple[PrivateKey, bytes]:
    key = PrivateKey.from_seed(bytes(range(32)))
    return key, seal(key, passphrase, created=1_764_072_000, scrypt_n=FAST)


def test_every_truncation_is_refused() -> None:
    _, data = _sealed()
    for size in range(len(data) - 1):  # the last byte is a newline
        with pytest.raises(KeystoreError):
            unseal(data[:size], PASS)


def test_every_single_bit_flip_of_an_encrypted_file_is_refused() -> None:
    key, data = _sealed(PASS)
    assert unseal(data, PASS).did == key.did
    for position in range(len(data)):
        for bit in (0, 5):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            with pytest.raises(KeystoreError):
                unseal(bytes(damaged), PASS)


def test_a_bit_flip_never_changes_the_key_of_a_plaintext_file() -> None:
    # A plaintext file has no integrity beyond "the seed matches the did": a flip in
    # the creation time goes unnoticed, but the key itself cannot be swapped silently.
    key, data = _sealed(None)
    unnoticed = 0
    for position in range(len(data)):
        for bit in (0, 5):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            try:
                assert unseal(bytes(damaged), None).seed == key.seed
                unnoticed += 1
            except KeystoreError:
                pass
    assert 0 < unnoticed <= 20  # only digits of "created"


def _edit(data: bytes, change: dict[str, object]) -> bytes:
    document = json.loads(data)
    for path, value in change.items():
        target = document
        *parents, leaf = path.split(".")
        for parent in parents:
            target = target[parent]
        if value is None:
            del target[leaf]
        else:
            target[leaf] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version 2 is not supported.*upgrade craftnet"),
        ({"version": "1"}, "version '1'"),
        ({"format": "pem"}, "not a craftnet key file"),
        ({"did": "did:key:z6Mk"}, "did is damaged"),
        ({"did": None}, "no did"),
        ({"created": -1}, "created"),
        ({"created": True}, "created"),
        ({"encrypted": "yes"}, "true or false"),
        ({"extra": 1}, "unexpected or missing fields"),
        ({"ciphertext": None}, "unexpected or missing fields"),
        ({"kdf.name": "argon2id"}, "scrypt"),
        ({"kdf.n": 2**30}, "out of the accepted range"),
        ({"kdf.n": 3000}, "out of the accepted range"),
        ({"kdf.n": 2**9}, "out of the accepted range"),
        ({"kdf.r": 2**20}, "out of the accepted range"),
        ({"kdf.p": 1000}, "out of the accepted range"),
        ({"kdf.r": 0}, "positive integers"),
        ({"kdf.n": 2.5}, "positive integers"),
        ({"kdf.salt": "AAAA"}, "salt is 4 characters of base64, not the 16 bytes"),
        ({"kdf.salt": "A" * 4000}, "salt is 4000 characters of base64"),
        ({"kdf.salt": "not base64!" + "A" * 13}, "salt is not valid base64"),
        ({"kdf.extra": 1}, "unexpected scrypt fields"),
        ({"cipher.name": "aes-128-cbc"}, "unsupported cipher"),
        ({"cipher.nonce": 12}, "nonce must be a base64 string"),
        ({"cipher.extra": 1}, "unexpected cipher fields"),
    ],
)
def test_hostile_fields_are_refused_with_a_reason(change: dict[str, object], message: str) -> None:
    _, data = _sealed()
    # Each message is one the format checks give before scrypt runs, so a hostile cost
    # parameter is refused without being paid.
    with pytest.raises(KeystoreError, match=message):
        unseal(_edit(data, change), PASS)


def test_changing_the_clear_did_is_detected() -> None:
    _, data = _sealed()
    other = PrivateKey.from_seed(bytes(32)).did
    with pytest.raises(WrongPassphrase, match="or the file was altered"):
        unseal(_edit(data, {"did": other}), PASS)


def test_changing_the_did_of_a_plaintext_key_is_detected() -> None:
    _, data = _sealed(None)
    other = PrivateKey.from_seed(bytes(32)).did
    with pytest.raises(KeystoreError, match="does not match the file's did"):
        unseal(_edit(data, {"did": other}), None)


def test_non_canonical_base64_is_refused() -> None:
    _, data = _sealed()
    salt = json.loads(data)["kdf"]["salt"]
    assert salt.endswith("==")
    # The character before '==' carries 4 unused bits; set one of them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twisted = salt[:-3] + alphabet[alphabet.index(salt[-3]) ^ 1] + "=="
    with pytest.raises(KeystoreError, match="canonical base64"):
        unseal(_edit(data, {"kdf.salt": twisted}), PASS)


def test_oversized_file_is_refused(store: Keystore) -> None:
    store.create("hub", PASS)
    (store.path / "hub.key").write_bytes(b" " * (ks.MAX_FILE_SIZE + 1))
    with pytest.raises(KeystoreError, match="too large"):
        store.load("hub", PASS)


def test_damaged_file_is_named_when_listing(store: Keystore) -> None:
    store.create("hub", PASS)
    store.create("potter", PASS)
    (store.path / "potter.key").write_bytes(b'{"format": "craftnet-key", "vers')
    with pytest.raises(KeystoreError, match=r"key 'potter'.*truncated or corrupted"):
        store.list()


def test_a_key_file_nested_past_the_json_parser_is_refused(store: Keystore) -> None:
    store.create("hub", PASS)
    (store.path / "hub.key").write_bytes(b"[" * 15_000)  # under the 16 KiB file limit
    with pytest.raises(KeystoreError, match="truncated or corrupted"):
        store.load("hub", PASS)


@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_with_a_keystore_error(data: bytes) -> None:
    with pytest.raises(KeystoreError):
        unseal(data, PASS)


@given(
    seed=st.binary(min_size=32, max_size=32),
    passphrase=st.text(min_size=1, max_size=40),
    created=st.integers(0, 2**40),
)
def test_seal_unseal_round_trip(seed: bytes, passphrase: str, created: int) -> None:
    key = PrivateKey.from_seed(seed)
    data = seal(key, passphrase, created=created, scrypt_n=FAST)
    assert unseal(data, passphrase).seed == seed
    assert json.loads(data)["created"] == created
