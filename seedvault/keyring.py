"""The signing keys a user keeps in `config/keys/`: listed, and found by key id.

`keygen` writes `NAME.key` (the private key, PEM, mode 0600, encrypted when a passphrase
was given) and `NAME.key.pub` beside it. A key is found by its id (or a prefix of at least
8 hex digits that names one key) so that commands can say `--key 3f2a9c1d` instead of a
path. The id comes from the `.pub` file when there is one (an encrypted private key cannot
be read without its passphrase); whoever loads the private key checks the pair agrees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from seedvault._text import listing, quote
from seedvault.errors import NotFoundError, UsageError
from seedvault.signing import PrivateKey, PublicKey

MAX_KEY_FILES = 1000  # files looked at in keys/; a directory holding more is not a key ring
MAX_KEY_FILE_BYTES = 64 * 1024
MIN_ID_PREFIX = 8
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True)
class KeyFile:
    path: Path  # the private key
    public_path: Path | None
    key_id: str | None  # None: encrypted, and no .pub beside it
    key_type: str | None
    encrypted: bool

    def to_dict(self) -> dict[str, object]:
        return {"key_id": self.key_id, "type": self.key_type, "encrypted": self.encrypted,
                "private_key": str(self.path), "public_key": str(self.public_path) if self.public_path else None}


def is_encrypted(path: Path) -> bool:
    """Whether a PEM private key file is passphrase-protected (PKCS#8 or legacy OpenSSL)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False  # loading it reports the real problem
    return b"BEGIN ENCRYPTED PRIVATE KEY" in head or b"Proc-Type: 4,ENCRYPTED" in head


def looks_like_key_id(text: str) -> bool:
    return MIN_ID_PREFIX <= len(text) <= 64 and bool(_HEX.fullmatch(text))


def list_keys(keys_dir: Path) -> list[KeyFile]:
    """The private keys in KEYS_DIR (`*.key`, and `*.pem` holding a private key), sorted by name."""
    if not keys_dir.is_dir():
        return []
    names = []
    for i, entry in enumerate(sorted(keys_dir.iterdir())):
        if i >= MAX_KEY_FILES:
            raise UsageError(f"{keys_dir}: expected at most {MAX_KEY_FILES} files in the key directory, found more")
        if entry.suffix in (".key", ".pem") and entry.is_file() and not entry.is_symlink():
            names.append(entry)
    return [_describe(p) for p in names]


def _describe(path: Path) -> KeyFile:
    pub_path = path.with_name(path.name + ".pub")
    encrypted = is_encrypted(path)
    public: PublicKey | None = None
    if pub_path.is_file() and pub_path.stat().st_size <= MAX_KEY_FILE_BYTES:
        try:
            public = PublicKey.load(pub_path)
        except UsageError:
            public = None
    if public is None and not encrypted and path.stat().st_size <= MAX_KEY_FILE_BYTES:
        try:
            public = PrivateKey.load(path).public
        except UsageError:
            public = None
    return KeyFile(path, pub_path if pub_path.is_file() else None, public.key_id if public else None,
                   public.key_type if public else None, encrypted)


def find_key(keys_dir: Path, key_id: str) -> Path:
    """The private key in KEYS_DIR whose id is KEY_ID, or starts with it (one key only)."""
    wanted = key_id.lower()
    keys = list_keys(keys_dir)
    matches = [k for k in keys if k.key_id is not None and k.key_id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0].path
    if not matches:
        known = [k.key_id[:16] for k in keys if k.key_id]
        raise NotFoundError(
            f"key {quote(key_id)}: expected a key file or the id of a key in {keys_dir}, found "
            + (f"no key with that id (the keys there: {listing(known)})" if known else "no keys there"),
            hint="list your keys with: seedvault keys list",
        )
    raise UsageError(f"key {quote(key_id)}: expected an id naming one key, found {len(matches)} keys starting "
                     f"with it: {listing([str(k.key_id) for k in matches])}", hint="give more of the id")


def public_key_of(path: Path) -> PublicKey:
    """The public key in a .pub file, or of an unencrypted private key."""
    try:
        return PublicKey.load(path)
    except UsageError as public_error:
        if is_encrypted(path):
            raise UsageError(f"{path}: it is an encrypted private key; give its public key "
                             f"({path.name}.pub) to see its id") from None
        try:
            return PrivateKey.load(path).public
        except UsageError:
            raise public_error from None


def check_pair(path: Path, key: PrivateKey) -> None:
    """A private key and the .pub beside it are one pair (a swapped .pub would make
    `--key ID` sign with some other key than the one named)."""
    pub_path = path.with_name(path.name + ".pub")
    if not pub_path.is_file():
        return
    try:
        public = PublicKey.load(pub_path)
    except UsageError:
        return
    if public.key_id != key.key_id:
        raise UsageError(f"{path}: expected the key pair of {pub_path.name} (id {public.key_id[:16]}), found a "
                         f"private key with id {key.key_id[:16]}", hint="the files of two keys were mixed up")
