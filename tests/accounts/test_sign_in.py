"""Signing in: lockout per account and per address after repeated failures, all of it audited."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(username: str, password: str, address: str = "203.0.113.7"):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return response, client


def test_fifty_wrong_passwords_then_the_right_one_does_not_sign_in(alice):
    for _ in range(50):
        sign_in("alice", "wrong password")
    response, client = sign_in("alice", PASSWORD)
    assert response.status_code == 429 and "Signing in is paused" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_an_account_is_locked_whatever_address_the_attempts_come_from(alice):
    for n in range(5):
        sign_in("alice", "wrong password", address=f"198.51.100.{n}")
    response, _ = sign_in("alice", PASSWORD, address="192.0.2.99")
    assert response.status_code == 429


def test_an_address_is_locked_whatever_account_it_tries(alice, bob):
    for name in ("bob", "carol", "dave", "erin", "frank"):
        sign_in(name, "guess", address="198.51.100.66")
    response, _ = sign_in("alice", PASSWORD, address="198.51.100.66")
    assert response.status_code == 429
    response, _ = sign_in("alice", PASSWORD, address="198.51.100.67")
    assert response.status_code == 302  # the account itself is not locked


def test_a_few_mistakes_are_forgiven_by_a_success(alice):
    for _ in range(4):
        sign_in("alice", "wrong password")
    assert sign_in("alice", PASSWORD)[0].status_code == 302
    for _ in range(4):
        sign_in("alice", "wrong password")
    assert sign_in("alice", PASSWORD)[0].status_code == 302


def test_sign_ins_failures_and_lockouts_are_audited_without_passwords(alice):
    sign_in("alice", PASSWORD)
    for _ in range(5):
        sign_in("alice", "hunter2-wrong")
    actions = list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))
    assert actions[0] == "signed_in"
    assert actions.count("sign_in_failed") == 5 and "sign_in_locked_out" in actions
    failed = AuditEntry.objects.filter(action="sign_in_failed").first()
    assert failed.after == {"username": "alice", "address": "203.0.113.7"}
    assert "hunter2" not in str(list(AuditEntry.objects.values("before", "after")))
