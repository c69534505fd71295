"""Secrets at rest (LLM connections, export credentials): AES-256-GCM, bound to their row,
opened after a key rotation."""

import base64
import os

import pytest

from libs.common.config import ConfigError
from libs.common.secret_box import (
    SecretBox,
    SecretKeyError,
    check_key_setting,
    masked,
    open_box,
    parse_key,
)


def test_a_sealed_secret_opens_only_with_its_key_and_row() -> None:
    box = SecretBox(os.urandom(32))
    sealed = box.seal("sk-live-1234", "project-a/conn-1")
    assert b"sk-live" not in sealed
    assert box.open(sealed, "project-a/conn-1") == "sk-live-1234"
    with pytest.raises(SecretKeyError, match="does not open"):
        box.open(sealed, "project-b/conn-1")
    with pytest.raises(SecretKeyError, match="not configured"):
        SecretBox(os.urandom(32)).open(sealed, "project-a/conn-1")


def test_the_previous_key_still_opens_and_values_are_told_apart() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed = SecretBox(old).seal("sk-old", "p/c")
    rotated = SecretBox(new, previous=old)
    assert rotated.open(sealed, "p/c") == "sk-old"
    assert not rotated.is_current(sealed)
    assert rotated.is_current(rotated.seal("sk-old", "p/c"))


def test_keys_are_32_bytes_in_hex_or_base64() -> None:
    key = os.urandom(32)
    assert parse_key(key.hex()) == key
    assert parse_key(base64.b64encode(key).decode()) == key
    assert parse_key(base64.urlsafe_b64encode(key).decode().rstrip("=")) == key
    for bad in ("", "short", "zz" * 32, base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(SecretKeyError):
            parse_key(bad)


def test_only_the_last_four_characters_are_shown() -> None:
    assert masked("sk-abcdefgh1234") == "...1234"


def test_a_malformed_key_setting_is_named_and_an_empty_one_means_no_box() -> None:
    check_key_setting("QUERY_ENCRYPTION_KEY", "")
    with pytest.raises(ConfigError, match="QUERY_ENCRYPTION_KEY must be 32 bytes"):
        check_key_setting("QUERY_ENCRYPTION_KEY", "short")
    assert open_box("") is None
    old, new = os.urandom(32), os.urandom(32)
    sealed = SecretBox(old).seal("secret", "p")
    box = open_box(new.hex(), old.hex())
    assert box is not None and box.open(sealed, "p") == "secret"
