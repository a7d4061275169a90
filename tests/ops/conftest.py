"""Operations tests: scraping /metrics, a throwaway Redis, and LLMHub served by two daphne processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from providers.registry import registry
from tests.conftest import GOOD_KEYS, database_url_for_subprocesses

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "metrics-scrape-token-for-tests-0001"
APP = "llmhub.asgi:application"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter that never moved is not written)."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    return response.content.decode()


@pytest.fixture
def metrics_open(settings):
    settings.LLMHUB_METRICS_TOKEN = ""


@pytest.fixture
def openai_provider(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throwaway Redis on 127.0.0.1 (Debian's redis-server), stopped afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server, "redis-server", seconds=10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


@dataclass
class Hubs:
    """Two server processes of one LLMHub sharing a metrics folder, writing JSON logs."""

    urls: list[str]
    logs: list[Path]

    def log_lines(self) -> list[str]:
        return [line for path in self.logs for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def hubs(django_db_setup, static_files, tmp_path_factory) -> Iterator[Hubs]:
    """Two daphne processes on the test database, as several workers run in production: shared
    PROMETHEUS_MULTIPROC_DIR, JSON logs, a metrics token, and retention every second."""
    folder = tmp_path_factory.mktemp("hubs")
    (folder / "metrics").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocesses(),
        "LLMHUB_DATA_DIR": str(settings.DATA_DIR),
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics"),
        "LLMHUB_LOG_FORMAT": "json",
        "LLMHUB_METRICS_TOKEN": METRICS_TOKEN,
        "LLMHUB_RETENTION_DAYS": "1",
        "LLMHUB_RETENTION_INTERVAL": "1",
    }
    processes, urls, logs = [], [], []
    for number in range(2):
        port, log = free_port(), folder / f"daphne-{number}.log"
        # -v 0: daphne writes no access log of its own; LLMHub logs one JSON line per request.
        command = [sys.executable, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(port), APP]
        with log.open("w") as output:
            processes.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
            )
        urls.append(f"http://127.0.0.1:{port}")
        logs.append(log)
    try:
        for process, url in zip(processes, urls, strict=True):
            wait_for_port(int(url.rsplit(":", 1)[1]), process, "daphne")
        yield Hubs(urls, logs)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
