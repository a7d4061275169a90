"""Several server processes on one port: `python -m llmhub.serve --workers N`.

This process (the supervisor) opens one listening socket per worker, all on the same port with
SO_REUSEPORT, and starts N workers, each a whole `llmhub.serve` (daphne, its drain on SIGTERM and its
run recovery) serving the socket it inherits. The kernel spreads new connections evenly over the
sockets (by a hash of the client's address and port).

Why SO_REUSEPORT, and the sockets opened here: one socket shared by every worker was tried first
(gunicorn's way); the worker that woke first accepted a whole burst, so one of two workers served
all 100 requests of tests/scale. One port for the whole service (no proxy needed in front, unlike a
port per worker), and the supervisor keeps every socket open: a worker that crashes or is killed is
replaced on the same socket, and the connections waiting in its queue are served by the new one
instead of being reset. Only processes of the same user can join a SO_REUSEPORT port (Linux).

The supervisor forwards SIGTERM and SIGINT to the workers (each drains its runs, then exits) and
exits when they have; a second signal is forwarded too (the workers stop at once). A worker that
exits on its own (a crash, kill -9) is started again; its runs are ended by the other workers'
recovery when their lease runs out. Workers share state only through the database (DATABASE_URL,
PostgreSQL) and Redis (REDIS_URL: the channel layer carries websockets and cancels between them),
so both are required.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

logger = logging.getLogger("llmhub.serve")
# A worker that exits sooner than this after its start is restarted only after a pause: a worker
# that cannot start (a bad setting) must not be restarted in a tight loop.
QUICK_EXIT_SECONDS = 5.0
BACKLOG = 2048


def refusal(settings) -> str | None:
    """Why several workers cannot run with these settings, or None."""
    if not settings.REDIS_URL:
        return "Several workers need REDIS_URL: cancels and websockets go between them through Redis."
    if settings.DATABASES["default"]["ENGINE"] == settings.SQLITE_ENGINE:
        return "Several workers need a database server (DATABASE_URL=postgres://...), not SQLite."
    return None


class Supervisor:
    def __init__(self, host: str, port: int, workers: int) -> None:
        self.workers = workers
        self.listeners = [
            socket.create_server((host, port), family=socket.AF_INET, backlog=BACKLOG, reuse_port=True)
            for _ in range(workers)
        ]
        for listener in self.listeners:
            listener.set_inheritable(True)
        self.children: dict[int, tuple[subprocess.Popen, float, int]] = {}
        self.signals = 0
        self.metrics_dir = self._metrics_dir()

    def _metrics_dir(self) -> str | None:
        """Every worker writes its Prometheus counters to one folder, so a scrape of any sums all
        (ops/metrics.py); a fresh one unless PROMETHEUS_MULTIPROC_DIR names it."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
            for name in os.listdir(folder):  # counters of an earlier start would be summed in
                if name.endswith(".db"):
                    os.unlink(os.path.join(folder, name))
            return None
        folder = tempfile.mkdtemp(prefix="llmhub-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        return folder

    def start_worker(self, index: int) -> None:
        fd = self.listeners[index].fileno()
        child = subprocess.Popen([sys.executable, "-m", "llmhub.serve", "--fd", str(fd)], pass_fds=[fd])
        self.children[child.pid] = (child, time.monotonic(), index)

    def on_signal(self, signum: int, frame=None) -> None:
        self.signals += 1
        if self.signals == 1:
            logger.info("%s: the workers drain their runs, then stop", signal.Signals(signum).name)
            self.close()  # the workers' copies close as they drain
        for child, _, _ in self.children.values():
            if child.poll() is None:
                child.send_signal(signum)

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        try:
            for index in range(self.workers):
                self.start_worker(index)
            while self.children:
                pid, status = os.wait()
                child, started, index = self.children.pop(pid, (None, 0.0, 0))
                if child is None or self.signals:
                    continue
                logger.warning("Worker %d exited (status %d); starting another", pid, status)
                if time.monotonic() - started < QUICK_EXIT_SECONDS:
                    time.sleep(QUICK_EXIT_SECONDS)
                if not self.signals:
                    self.start_worker(index)
        finally:
            self.close()
            if self.metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
        return 0
