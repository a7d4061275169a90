"""House style, checked with the suite (CI runs `make test` only): the formatter formats, and
nothing opts out of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"
# The formatter's opt-out comments, spelled in two parts so that this file does not contain them.
OPT_OUTS = ("fmt: " + "skip", "fmt: " + "off")


def test_ruff_finds_nothing_to_lint_or_reformat():
    for command in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([RUFF, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


def test_no_code_opts_out_of_the_formatter():
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    opted_out = [
        f"{name}:{number}"
        for name in tracked
        for number, line in enumerate((ROOT / name).read_text().splitlines(), 1)
        if any(opt_out in line for opt_out in OPT_OUTS)
    ]
    assert opted_out == []
