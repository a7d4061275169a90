"""Real LLMHub server processes for tests (`python -m llmhub.serve`, as `make run` starts it), on
the test database: started, killed, restarted and drained by the tests that need them."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from tests.conftest import database_url_for_subprocesses

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def log_path(name: str) -> Path:
    """test-artifacts/<name>.log; with several test workers (pytest -n), one log per worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return ARTIFACTS / (f"{name}-{worker}.log" if worker else f"{name}.log")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


_running: dict[str, Server] = {}


def server_at(url: str) -> Server:
    """The server this process started at `url` (e.g. the live server fixture's)."""
    return _running[url]


class Server:
    """One server process; its output goes to a fresh log file, log_path(name) (name-2, name-3, ...
    while a server of that name is still running)."""

    def __init__(self, name: str, port: int | None = None, workers: int = 1, **env: str) -> None:
        self.name, self.port = name, port or free_port()
        self.log_path, taken = log_path(name), {server.log_path for server in _running.values()}
        for number in itertools.count(2):
            if self.log_path not in taken:
                break
            self.log_path = log_path(f"{name}-{number}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)
        environment = {
            **os.environ,
            "DATABASE_URL": database_url_for_subprocesses(),
            "LLMHUB_DATA_DIR": str(settings.DATA_DIR),
            "LLMHUB_SPOOL_PATH": str(settings.LLMHUB_SPOOL_PATH),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self._log = self.log_path.open("a")
        command = [sys.executable, "-m", "llmhub.serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while not listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start; see {self.log_path}")
            time.sleep(0.1)
        _running[self.url] = self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """kill -9: no handler runs, nothing is settled."""
        self.process.kill()
        self.process.wait(10)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        _running.pop(self.url, None)

    def log(self) -> str:
        return self.log_path.read_text()
