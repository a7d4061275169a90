from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from providers import crypto
from providers.crypto import CredentialsUnreadable, Secret, mask


@pytest.mark.parametrize(
    ("secret", "masked"),
    [
        ("sk-proj-abcdefghijklmnopqrstuvwxyzvX2Q", "sk-...vX2Q"),
        ("sk-ant-api03-abcdefghijklmnop1234", "sk-...1234"),
        ("AIzaSyA-abcdefghijklmnopqrstuv9876", "...9876"),
        ("0123456789abcdef", "...cdef"),
        ("short-key", "••••"),
        ("", ""),
    ],
)
def test_it_masks_a_key_to_its_prefix_and_last_four(secret, masked):
    assert mask(secret) == masked


def test_a_secret_never_prints_its_value():
    secret = Secret("sk-live-abcdefghijklmnopqrst0000")
    assert "abcdefghijklmnopqrst" not in repr(secret)
    assert "abcdefghijklmnopqrst" not in str(secret)
    assert "abcdefghijklmnopqrst" not in f"{secret} {[secret]} { ({'k': secret}) }"
    assert secret.reveal() == "sk-live-abcdefghijklmnopqrst0000"


def test_it_round_trips_credentials_through_encryption(settings):
    settings.LLMHUB_ENCRYPTION_KEYS = [crypto.generate_key()]
    token = crypto.encrypt({"api_key": "sk-abc-0000000000001111", "organization_id": "org-1"})
    assert "sk-abc" not in token
    assert crypto.decrypt(token) == {"api_key": "sk-abc-0000000000001111", "organization_id": "org-1"}


def test_old_keys_still_decrypt_after_a_new_key_is_put_in_front(settings):
    old = crypto.generate_key()
    settings.LLMHUB_ENCRYPTION_KEYS = [old]
    token = crypto.encrypt({"api_key": "sk-rotate-me-00000000001111"})
    new = crypto.generate_key()
    settings.LLMHUB_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(token)["api_key"] == "sk-rotate-me-00000000001111"
    rotated = crypto.rotate(token)
    settings.LLMHUB_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(rotated)["api_key"] == "sk-rotate-me-00000000001111"
    with pytest.raises(CredentialsUnreadable, match="cannot be decrypted"):
        crypto.decrypt(token)


def test_it_says_clearly_when_a_key_is_not_a_fernet_key(settings):
    settings.LLMHUB_ENCRYPTION_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="not a Fernet key"):
        crypto.encrypt({"api_key": "x"})
