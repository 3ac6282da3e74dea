"""The key-encryption key (KEK) that wraps every data key in the key store.

It comes from ``KEY_ENCRYPTION_KEY`` (the base64url encoding of 32 random
bytes), or, when that is unset, from a file under ``DATA_DIR`` generated on
first use (mode 0600). Anything else is refused at start with a message that
says how to make a good one. Data keys are wrapped with AES-256-GCM, their key
id bound as associated data, so a wrapped key cannot be moved to another row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

KEK_FILE = "key_encryption_key"
KEK_BYTES = 32
NONCE_BYTES = 12
HOW_TO_MAKE_ONE = (
    'make one with: python -c "import base64, os; '
    'print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
)


class KeyEncryptionKeyError(ValueError):
    """The key-encryption key is missing, malformed, or not the one the keys were wrapped with."""


def parse_kek(text: str, source: str = "KEY_ENCRYPTION_KEY") -> bytes:
    """The 32 bytes of a base64url key-encryption key; a clear error for anything else."""
    cleaned = text.strip()
    try:
        raw = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        raise KeyEncryptionKeyError(
            f"{source} is not base64url text; it must encode {KEK_BYTES} random bytes "
            f"({HOW_TO_MAKE_ONE})"
        ) from None
    if not cleaned or any(c not in _B64URL for c in cleaned.rstrip("=")):
        raise KeyEncryptionKeyError(
            f"{source} is not base64url text; it must encode {KEK_BYTES} random bytes "
            f"({HOW_TO_MAKE_ONE})"
        )
    if len(raw) != KEK_BYTES:
        raise KeyEncryptionKeyError(
            f"{source} must encode exactly {KEK_BYTES} bytes, not {len(raw)} ({HOW_TO_MAKE_ONE})"
        )
    return raw


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def encode_kek(kek: bytes) -> str:
    return base64.urlsafe_b64encode(kek).decode("ascii")


def kek_file(data_dir: Path) -> Path:
    return data_dir / KEK_FILE


def load_kek(
    configured: str | None, data_dir: Path, *, postgres: bool, create: bool = True
) -> bytes:
    """``KEY_ENCRYPTION_KEY`` if set, else the generated file under ``data_dir``
    (created, mode 0600, when ``create``). With PostgreSQL the service warns at
    start (:func:`warn_if_file_kek`): its keys then depend on one machine's file."""
    del postgres  # the same rule for both stores; the warning is the service's
    if configured:
        return parse_kek(configured)
    path = kek_file(data_dir)
    if path.exists():
        return parse_kek(path.read_text(encoding="ascii", errors="replace"), str(path))
    if not create:
        raise KeyEncryptionKeyError(f"no KEY_ENCRYPTION_KEY and no key file {path}")
    data_dir.mkdir(parents=True, exist_ok=True)
    write_kek_file(path, secrets.token_bytes(KEK_BYTES))
    return parse_kek(path.read_text(encoding="ascii"), str(path))


def warn_if_file_kek(configured: str | None, data_dir: Path, *, postgres: bool) -> None:
    """The warning a PostgreSQL deployment without ``KEY_ENCRYPTION_KEY`` gets at start."""
    if postgres and not configured:
        log.warning(
            "KEY_ENCRYPTION_KEY is not set: the data keys in PostgreSQL are wrapped by the "
            "file %s on this machine; set KEY_ENCRYPTION_KEY for every process instead",
            kek_file(data_dir),
        )


def write_kek_file(path: Path, kek: bytes) -> None:
    """Writes (or replaces, atomically) a key file readable by its owner only."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(encode_kek(kek) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def kek_id(kek: bytes) -> str:
    """A short fingerprint of a KEK, kept beside each wrapped key (not secret)."""
    return hashlib.sha256(b"interviews-kek\x00" + kek).hexdigest()[:16]


def wrap(kek: bytes, key_id: str, data_key: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, data_key, key_id.encode("utf-8"))


def unwrap(kek: bytes, key_id: str, wrapped: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], key_id.encode("utf-8")
        )
    except InvalidTag:
        raise KeyEncryptionKeyError(
            f"data key {key_id} does not unwrap with this key-encryption key: "
            "KEY_ENCRYPTION_KEY (or the key file) is not the one the keys were wrapped with"
        ) from None
