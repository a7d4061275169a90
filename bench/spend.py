"""Spend analytics at scale: seed 1,000,000 usage rows into a fresh SQLite database and time every
spend endpoint, server side, against a baseline page measured in the same run.

    .venv/bin/python bench/spend.py [--rows 1000000] [--repeat 15]

Target (issue 6): every endpoint answers in under 150 ms on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 150


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    options = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="llmhub-bench-"))
    os.environ.update(
        LLMHUB_DATA_DIR=str(data), DJANGO_SETTINGS_MODULE="llmhub.settings", DJANGO_ALLOWED_HOSTS="testserver"
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    team_ids, user_ids = cast()
    started = time.perf_counter()
    seed(data / "llmhub.sqlite3", options.rows, team_ids, user_ids)
    print(
        f"seeded {options.rows:,} usage rows and their daily roll-ups in {time.perf_counter() - started:.1f} s"
    )

    from django.test import Client

    from accounts.models import User

    client = Client()
    client.force_login(User.objects.get(username="admin"))
    today = date.today()
    endpoints = {
        "baseline: /accounts/login/ (no data)": "/accounts/login/",
        "/spend/ (this month, all teams)": "/spend/",
        "/spend/ (one team, one provider)": f"/spend/?team={team_ids[0]}&provider=openai",
        "/spend/ (a whole year)": f"/spend/?from={today - timedelta(days=365)}&to={today}",
        "/spend/ (a whole year, embeddings only)": f"/spend/?from={today - timedelta(days=365)}&to={today}"
        "&kind=embeddings",
        "/budget/ (spend bars)": "/budget/",
        "/providers/openai/budget/": "/providers/openai/budget/",
        "/spend/usage.csv (first 64 KB)": "/spend/usage.csv",
    }
    print(f"\n{'endpoint':44} {'median ms':>10} {'p95 ms':>8} {'x baseline':>11}  target < {TARGET_MS} ms")
    baseline = None
    failures = 0
    for name, url in endpoints.items():
        timings = [measure(client, url) for _ in range(options.repeat)]
        median, p95 = statistics.median(timings), sorted(timings)[int(len(timings) * 0.95) - 1]
        baseline = baseline or median
        ok = name.startswith("baseline") or p95 < TARGET_MS
        failures += not ok
        print(f"{name:44} {median:10.1f} {p95:8.1f} {median / baseline:10.1f}x  {'ok' if ok else 'TOO SLOW'}")
    print(f"\n{'all endpoints within target' if not failures else f'{failures} endpoint(s) over target'}")
    sys.exit(1 if failures else 0)


def measure(client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    if response.streaming:
        received = 0
        for chunk in response.streaming_content:
            received += len(chunk)
            if received >= 65536:
                break
        response.close()
    return (time.perf_counter() - started) * 1000


def cast() -> tuple[list[int], list[int]]:
    from accounts.models import Membership, Team, User
    from providers.registry import registry
    from usage.models import Budget

    admin = User.objects.create_superuser("admin", "admin@example.com", "bench-only-password")
    teams = [Team.objects.create(name=f"Team {n}") for n in range(5)]
    users = [admin] + [User.objects.create_user(f"user{n}") for n in range(20)]
    for n, user in enumerate(users):
        Membership.objects.create(user=user, team=teams[n % len(teams)], role="admin" if n < 5 else "member")
    Membership.objects.get_or_create(user=admin, team=teams[0], defaults={"role": "admin"})
    registry.save("openai", {"api_key": "sk-bench-not-a-real-key-0000"}, team=teams[0])
    registry.save("anthropic", {"api_key": "sk-ant-bench-not-a-real-key-0000"}, team=teams[0])
    Budget.objects.create(team=teams[0], daily_limit_usd=100, monthly_limit_usd=1000)
    Budget.objects.create(provider_id="openai", monthly_limit_usd=5000)
    return [t.pk for t in teams], [u.pk for u in users]


# (provider, model, $ per 1M input, $ per 1M output, kind of call)
MODELS = [
    ("openai", "gpt-4o", 2.5, 10, "generation"),
    ("openai", "gpt-4o-mini", 0.15, 0.6, "generation"),
    ("anthropic", "claude-sonnet-4-5", 3, 15, "generation"),
    ("anthropic", "claude-haiku-4-5", 1, 5, "generation"),
    ("openai", "text-embedding-3-small", 0.02, 0, "embeddings"),
]


def seed(database: Path, rows: int, team_ids: list[int], user_ids: list[int]) -> None:
    """Usage rows spread over the last 400 days, written with SQLite's bulk insert, then rolled up
    with one GROUP BY, as settlement would have left them (the team roll-ups follow DailySpend by
    their triggers, usage/team_rollups.py)."""
    random.seed(7)
    now = datetime.now(UTC)
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA synchronous = OFF")
        batch = []
        for n in range(rows):
            provider, model, price_in, price_out, kind = random.choice(MODELS)
            tokens_in = random.randint(50, 4000)
            tokens_out = random.randint(10, 1500) if kind == "generation" else 0
            cost = (price_in * tokens_in + price_out * tokens_out) / 1_000_000
            when = now - timedelta(seconds=random.randint(0, 400 * 86400))
            team, user = random.choice(team_ids), random.choice(user_ids)
            batch.append(
                (provider, model, f"bench-{n}", tokens_in, tokens_out, f"{cost:.12f}", kind, team, user, when)
            )
            if len(batch) == 50_000:
                insert(db, batch)
                batch = []
        insert(db, batch)
        db.execute(
            """INSERT INTO usage_dailyspend (day, team_id, user_id, provider_id, model, kind, runs, input_tokens,
                                             output_tokens, cost_usd)
               SELECT date(created_at), team_id, user_id, provider_id, model, kind, count(*), sum(input_tokens),
                      sum(output_tokens), sum(cost_usd)
               FROM usage_usagerecord GROUP BY date(created_at), team_id, user_id, provider_id, model, kind"""
        )


def insert(db: sqlite3.Connection, batch: list[tuple]) -> None:
    db.executemany(
        """INSERT INTO usage_usagerecord (provider_id, model, run_id, input_tokens, output_tokens, cost_usd,
                                          kind, team_id, user_id, created_at, source, cache_read_tokens,
                                          cache_write_tokens, reasoning_tokens, request_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'run', 0, 0, 0, '')""",
        [(*row[:-1], row[-1].isoformat(sep=" ")) for row in batch],
    )


if __name__ == "__main__":
    main()
