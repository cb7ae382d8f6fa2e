"""Secrets at rest: MultiFernet, the first key encrypts, every key decrypts, rotate re-encrypts."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from flowql.auth.secrets_box import SecretBox

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


def test_round_trip_and_no_plaintext_in_the_ciphertext() -> None:
    box = SecretBox(OLD)
    sealed = box.encrypt("hunter2-api-token")
    assert "hunter2" not in sealed
    assert box.decrypt(sealed) == "hunter2-api-token"
    assert box.encrypt("hunter2-api-token") != sealed  # fresh IV each time


def test_json_round_trip() -> None:
    box = SecretBox(OLD)
    value = {"token": "s3cr3t", "nested": [1, 2, {"k": None}], "unicode": "pässwörd"}
    sealed = box.encrypt_json(value)
    assert "s3cr3t" not in sealed
    assert box.decrypt_json(sealed) == value


def test_data_sealed_under_the_old_key_opens_after_a_new_key_is_put_first() -> None:
    sealed_before = SecretBox(OLD).encrypt("before rotation")
    rotated_box = SecretBox(f"{NEW},{OLD}")
    assert rotated_box.decrypt(sealed_before) == "before rotation"

    sealed_after = rotated_box.encrypt("after rotation")
    assert SecretBox(NEW).decrypt(sealed_after) == "after rotation"  # the first key encrypts
    with pytest.raises(ValueError, match="configured keys"):
        SecretBox(OLD).decrypt(sealed_after)


def test_rotate_re_encrypts_under_the_first_key_so_the_old_key_can_go() -> None:
    sealed = SecretBox(OLD).encrypt("long-lived secret")
    rotated = SecretBox(f"{NEW},{OLD}").rotate(sealed)
    assert rotated != sealed
    assert SecretBox(NEW).decrypt(rotated) == "long-lived secret"
    with pytest.raises(ValueError):
        SecretBox(OLD).decrypt(rotated)


def test_data_sealed_under_a_dropped_key_cannot_be_opened() -> None:
    sealed = SecretBox(OLD).encrypt("orphan")
    with pytest.raises(ValueError, match="configured keys"):
        SecretBox(NEW).decrypt(sealed)


def test_tampered_ciphertext_is_refused() -> None:
    box = SecretBox(OLD)
    sealed = box.encrypt("integrity")
    tampered = sealed[:-6] + ("A" * 6 if not sealed.endswith("A" * 6) else "B" * 6)
    with pytest.raises(ValueError):
        box.decrypt(tampered)
    with pytest.raises(ValueError):
        box.decrypt("not a fernet token")


def test_keys_are_comma_separated_and_whitespace_tolerant() -> None:
    sealed = SecretBox(OLD).encrypt("x")
    assert SecretBox(f" {NEW} , {OLD} ,").decrypt(sealed) == "x"


@pytest.mark.parametrize("keys", ["", " ", ",", " , "])
def test_no_keys_is_refused(keys: str) -> None:
    with pytest.raises(ValueError, match="at least one"):
        SecretBox(keys)


def test_a_malformed_key_is_refused() -> None:
    with pytest.raises(ValueError):
        SecretBox("not-a-fernet-key")
