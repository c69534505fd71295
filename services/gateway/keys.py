"""API key material: generation, hashing and display. Pure functions, no I/O."""

import hashlib
import hmac
import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyPair:
    public_key: str
    secret_key: str


def new_key_pair() -> KeyPair:
    return KeyPair(f"pk-lf-{uuid.uuid4()}", f"sk-lf-{uuid.uuid4()}")


def hash_secret(secret_key: str, salt: str) -> str:
    # A keyed hash, not a slow password hash: secrets are looked up on every request, and the
    # salt keeps a leaked table from being checked against guesses without the server's key.
    return hmac.new(salt.encode(), secret_key.encode(), hashlib.sha256).hexdigest()


def display_secret(secret_key: str) -> str:
    return f"{secret_key[:6]}...{secret_key[-4:]}"
