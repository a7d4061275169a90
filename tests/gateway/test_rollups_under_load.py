"""Hundreds of runs and API requests settling at once, through the engine in this process and the API
of the live server in another: the daily roll-ups equal the usage rows to the cent (issue 12 saw
them at 2.85-7.33 times the real spend on PostgreSQL), and so do the team roll-ups their triggers keep."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db.models import Sum

from gateway import keys
from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import rollups, runs, team_rollups
from usage.events import Ended
from usage.models import DailySpend, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
RUNS = 150  # browser-style runs: each has a user
REQUESTS = 150  # API requests: no user, an API key
MODELS = ["openai/gpt-4o", "openai/gpt-4o-mini"]
ASK = [Message("user", "Say hello.")]


async def test_hundreds_of_concurrent_settlements_roll_up_to_the_cent(
    alpha, alice, bob, fake_openai, hub_url
):
    await sync_to_async(registry.save)(
        "openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha
    )
    secret = (await sync_to_async(keys.create)(alpha, "load")).secret
    create = sync_to_async(runs.create_run)
    pending = [await create((alice, bob)[n % 2], alpha, MODELS[n % 2], ASK, 50) for n in range(RUNS)]

    async def run(one: Run) -> None:
        async for event in runs.stream(one):
            if isinstance(event, Ended):
                one = event.run
        assert one.status == Run.Status.COMPLETED, one.error_message

    auth = {"authorization": f"Bearer {secret}"}
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(base_url=hub_url, timeout=120, headers=auth, limits=limits) as client:

        async def request(n: int) -> None:
            messages = [{"role": "user", "content": "Say hello."}]
            body = {"model": MODELS[n % 2], "messages": messages, "max_tokens": 50, "stream": n % 3 == 0}
            answer = await client.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200, answer.text

        await asyncio.gather(*(run(one) for one in pending), *(request(n) for n in range(REQUESTS)))

    assert await UsageRecord.objects.filter(user__isnull=False, api_key=None).acount() == RUNS
    assert await UsageRecord.objects.filter(user=None, api_key__isnull=False).acount() == REQUESTS
    assert await sync_to_async(rollups.differences)() == []
    assert await sync_to_async(team_rollups.differences)() == []  # the team roll-ups too
    usage = await UsageRecord.objects.aaggregate(cost=Sum("cost_usd"), output=Sum("output_tokens"))
    rolled = await DailySpend.objects.aaggregate(
        cost=Sum("cost_usd"), output=Sum("output_tokens"), runs=Sum("runs")
    )
    assert rolled["runs"] == RUNS + REQUESTS and rolled["output"] == usage["output"]
    cent = Decimal("0.01")
    assert rolled["cost"].quantize(cent) == usage["cost"].quantize(cent) > 0
    assert abs(rolled["cost"] - usage["cost"]) < Decimal("0.000001")
