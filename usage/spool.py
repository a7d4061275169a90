"""The settlement spool: settlements the database could not take, kept in a file until it can.

An append-only file of JSON lines (LLMHUB_SPOOL_PATH, in the data folder, mode 0600), one settlement
a line, fsync'd before the settling run is handed back. Lines hold a run's fields (its text, token
counts, status) and never a credential: runs hold none. A lock file (flock) serializes appending and
replaying between the processes of one server, and replaying rewrites the file without the lines it
wrote. Writing a line twice is harmless: usage/records.py skips a run whose usage row exists.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from llmhub import conf
from llmhub.database import UNAVAILABLE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replayed:
    written: int = 0  # settlements written to the database now
    skipped: int = 0  # already there (written before, by this or another process)
    left: int = 0  # still waiting: the database is still unavailable
    rejected: int = 0  # lines that could not be read, moved to the .rejected file
    fault: str = ""  # why the rest was left


def path() -> Path:
    return Path(conf.setting("LLMHUB_SPOOL_PATH"))


@contextmanager
def _locked(block: bool = True) -> Iterator[bool]:
    """Hold the spool's lock (shared by every process using this data folder)."""
    lock = path().with_name(path().name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def append(entry: dict) -> None:
    """Add one settlement to the spool, durably: on disk when this returns."""
    line = json.dumps(entry, separators=(",", ":")) + "\n"
    with _locked():
        created = not path().exists()
        fd = os.open(path(), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # a line cut short by a crash stays alone (and is rejected on replay)
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _sync_folder()


def pending(team_ids: Collection[int] | None = None) -> int:
    """How many settlements wait in the spool (a stat when there are none); with `team_ids`, only
    those of these teams' runs. Every run asks it twice (its reservation, its settlement), so the
    stat is os.stat's: pathlib's costs ~20 µs more when the file is missing, as it nearly always is."""
    try:
        if os.stat(conf.setting("LLMHUB_SPOOL_PATH")).st_size == 0:
            return 0
        with path().open("rb") as spool:
            lines = [line for line in spool if line.strip()]
    except FileNotFoundError:
        return 0
    if team_ids is None:
        return len(lines)
    return sum(1 for line in lines if _team_of(line) in team_ids)


def _team_of(line: bytes) -> int | None:
    try:
        return json.loads(line)["run"]["fields"]["team"]
    except (ValueError, KeyError, TypeError):
        return None


def replay(apply: Callable[[dict], bool]) -> Replayed:
    """Write every spooled settlement with `apply` (True: written, False: already there), in order,
    until the database fails again; the lines not written stay. Another process replaying at the
    same moment makes this one return at once, leaving all of them to it."""
    with _locked(block=False) as mine:
        if not mine or not pending():
            return Replayed(left=pending() if not mine else 0)
        lines = [line for line in path().read_text().splitlines() if line.strip()]
        written = skipped = 0
        rejected: list[str] = []
        fault = ""
        for index, line in enumerate(lines):
            try:
                entry = json.loads(line)
            except ValueError:
                rejected.append(line)  # a line cut short by a crash mid-write
                continue
            try:
                if apply(entry):
                    written += 1
                else:
                    skipped += 1
            except UNAVAILABLE as error:
                fault = str(error)
                left = lines[index:]
                break
        else:
            left = []
        _rewrite(left)
        if rejected:
            _reject(rejected)
        return Replayed(written, skipped, len(left), len(rejected), fault)


def _rewrite(lines: list[str]) -> None:
    """Replace the spool with `lines` atomically (a crash leaves the old file or the new one)."""
    if not lines:
        path().unlink(missing_ok=True)
        return
    temporary = path().with_name(path().name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, "".join(line + "\n" for line in lines).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path())
    _sync_folder()


def _reject(lines: list[str]) -> None:
    rejected = path().with_name(path().name + ".rejected")
    fd = os.open(rejected, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, "".join(line + "\n" for line in lines).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    logger.error("%d unreadable settlement line(s) moved from the spool to %s", len(lines), rejected)


def _sync_folder() -> None:
    """A new or renamed file survives a power cut only once its folder entry is on disk too."""
    fd = os.open(path().parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
