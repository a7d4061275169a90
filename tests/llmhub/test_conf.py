"""llmhub.conf reads a setting once and again after any change of the settings (override_settings,
pytest-django's `settings` fixture); its now() is django.utils.timezone.now()'s."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.test import override_settings
from django.utils import timezone

from llmhub import conf


def test_a_changed_setting_is_read_again(settings):
    before = settings.LLMHUB_IDLE_TIMEOUT
    assert conf.setting("LLMHUB_IDLE_TIMEOUT") == before  # read, and kept
    with override_settings(LLMHUB_IDLE_TIMEOUT=before + 7):
        assert conf.setting("LLMHUB_IDLE_TIMEOUT") == before + 7
    assert conf.setting("LLMHUB_IDLE_TIMEOUT") == before
    settings.LLMHUB_IDLE_TIMEOUT = 0.25
    assert conf.setting("LLMHUB_IDLE_TIMEOUT") == 0.25
    assert conf.setting("ROOT_URLCONF") == settings.ROOT_URLCONF  # any other setting, read afresh


def test_now_is_djangos_now():
    moment = conf.now()
    assert moment.tzinfo is UTC and abs(timezone.now() - moment) < timedelta(seconds=5)
    with override_settings(USE_TZ=False):
        assert conf.now().tzinfo is None and timezone.now().tzinfo is None
    assert conf.now().tzinfo is UTC
