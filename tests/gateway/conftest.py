"""The API tests talk to the real ASGI app under daphne (the browser tests' server)."""

import base64
import struct
import zlib

import openai
import pytest

from gateway import keys
from providers.models import CustomKind
from providers.registry import registry
from tests.conftest import EXTRA_CREDENTIALS, GOOD_KEYS
from tests.fakes.openai import FakeOpenAI

COMPATIBLE_KEY = "sk-test-office-vllm-key-0000c0mp"
# Every kind of provider, as "provider/model" of a model that takes tools, JSON and images.
EVERY_KIND = {
    "openai": "openai/gpt-4o-mini",
    "azure": "azure/mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash",
    "ollama": "ollama/llama3.2:latest",
    "compatible": "office-vllm/llama-3.1-8b-instruct",
}
IMAGE_MODELS = {**EVERY_KIND, "ollama": "ollama/qwen2.5vl:7b"}


@pytest.fixture
def fake_compatible():
    """An OpenAI-compatible server (a vLLM in the office), set up as a custom provider."""
    fake = FakeOpenAI(api_keys={COMPATIBLE_KEY})
    fake.models = ["llama-3.1-8b-instruct"]
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def openai_and_anthropic(alpha, fake_openai, fake_anthropic):
    """Team Alpha with the OpenAI and Anthropic fakes connected and fallback off: a failure is the
    client's to see."""
    from usage.models import FallbackPolicy

    for kind, fake in (("openai", fake_openai), ("anthropic", fake_anthropic)):
        registry.save(kind, {"api_key": GOOD_KEYS[kind]}, endpoint=fake.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)


@pytest.fixture
def every_kind(alpha, fake_openai, fake_azure, fake_anthropic, fake_gemini, fake_ollama, fake_compatible):
    """Team Alpha with a provider of every kind; returns kind -> its fake server."""
    from usage.models import FallbackPolicy

    fakes = {
        "openai": fake_openai,
        "azure": fake_azure,
        "anthropic": fake_anthropic,
        "gemini": fake_gemini,
        "ollama": fake_ollama,
    }
    for kind, fake in fakes.items():
        credentials = {"api_key": GOOD_KEYS[kind], **EXTRA_CREDENTIALS.get(kind, {})}
        registry.save(kind, credentials, endpoint=fake.url, team=alpha)
    CustomKind.objects.create(
        id="office-vllm",
        team=alpha,
        definition={
            "id": "office-vllm",
            "name": "Office vLLM",
            "dialect": "openai",
            "endpoint": fake_compatible.url,
            "models": [
                {
                    "id": "llama-3.1-8b-instruct",
                    "context_window": 131072,
                    "max_output": 8192,
                    "input_per_1m": "0.10",
                    "output_per_1m": "0.20",
                    "capabilities": ["chat", "tools", "structured_output", "images"],
                }
            ],
        },
    )
    registry.save("office-vllm", {"api_key": COMPATIBLE_KEY}, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    return {**fakes, "compatible": fake_compatible}


@pytest.fixture
def api_key(alpha):
    return keys.create(alpha, "agents")


@pytest.fixture
def sdk(api_key, hub_url):
    return openai.OpenAI(base_url=f"{hub_url}/v1", api_key=api_key.secret, max_retries=0, timeout=30)


def png(width: int, height: int) -> bytes:
    """A real PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def data_uri(width: int = 64, height: int = 32) -> str:
    return "data:image/png;base64," + base64.b64encode(png(width, height)).decode()
