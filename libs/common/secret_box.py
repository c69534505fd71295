"""Encryption at rest of the secrets services keep for their users: evals' LLM connection keys
(EVALS_ENCRYPTION_KEY) and query's blob-storage export credentials (QUERY_ENCRYPTION_KEY).
AES-256-GCM with a 32-byte key (base64 or hex). A stored value is `v1`, the key's 4-byte
fingerprint, a 12-byte random nonce and the ciphertext with its tag, so a value sealed with
another key is told apart from a corrupted one. Rotation: start every replica with the new key in
<SERVICE>_ENCRYPTION_KEY and the old one in <SERVICE>_ENCRYPTION_KEY_PREVIOUS, re-seal the rows
(`python -m services.evals.rotate_secrets`, `python -m services.query.rotate_secrets`), then
drop the previous key."""

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from libs.common.config import ConfigError

_VERSION = b"v1"
_NONCE_BYTES = 12


class SecretKeyError(ValueError):
    """A setting that is not a 32-byte key, or a value no configured key opens."""


def parse_key(raw: str) -> bytes:
    """32 bytes from 64 hex digits or from base64 (standard or URL-safe, padding optional)."""
    raw = raw.strip()
    try:
        if len(raw) == 64:
            key = bytes.fromhex(raw)
        else:
            key = base64.urlsafe_b64decode(raw.replace("+", "-").replace("/", "_") + "==")
    except (ValueError, binascii.Error) as exc:
        raise SecretKeyError("must be 32 bytes as 64 hex digits or base64") from exc
    if len(key) != 32:
        raise SecretKeyError(f"must be 32 bytes as 64 hex digits or base64, got {len(key)} bytes")
    return key


def check_key_setting(name: str, value: str) -> None:
    """For a config's __post_init__: an empty setting passes (no key), a malformed one stops the
    process naming the variable."""
    try:
        if value:
            parse_key(value)
    except SecretKeyError as exc:
        raise ConfigError(f"{name} {exc}") from exc


def _fingerprint(key: bytes) -> bytes:
    # The label predates the move from the evals service; values already sealed depend on it.
    return hashlib.sha256(b"obs-evals-secret-box" + key).digest()[:4]


class SecretBox:
    """Seals with the current key; opens with the current or the previous one."""

    def __init__(self, key: bytes, previous: bytes | None = None) -> None:
        self._current = key
        self._keys = {_fingerprint(k): AESGCM(k) for k in (previous, key) if k is not None}

    def seal(self, plaintext: str, context: str) -> bytes:
        """`context` (the row's project and id) is authenticated: a sealed value copied to
        another row does not open there."""
        nonce = os.urandom(_NONCE_BYTES)
        fingerprint = _fingerprint(self._current)
        sealed = self._keys[fingerprint].encrypt(nonce, plaintext.encode(), context.encode())
        return _VERSION + fingerprint + nonce + sealed

    def open(self, value: bytes, context: str) -> str:
        version, fingerprint = value[:2], value[2:6]
        nonce, sealed = value[6 : 6 + _NONCE_BYTES], value[6 + _NONCE_BYTES :]
        cipher = self._keys.get(fingerprint)
        if version != _VERSION or cipher is None:
            raise SecretKeyError("sealed with a key that is not configured")
        try:
            return cipher.decrypt(nonce, sealed, context.encode()).decode()
        except InvalidTag as exc:
            raise SecretKeyError("the sealed value does not open (corrupted or moved)") from exc

    def is_current(self, value: bytes) -> bool:
        return value[2:6] == _fingerprint(self._current)


def open_box(key: str, previous: str = "") -> SecretBox | None:
    """The box of a service's key settings; None without a key (the service then refuses to
    store secrets with a clear 503)."""
    if not key:
        return None
    return SecretBox(parse_key(key), parse_key(previous) if previous else None)


def masked(secret: str) -> str:
    """Langfuse's display form: the last four characters only."""
    return "..." + secret[-4:]
