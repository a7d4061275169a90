"""Reading settings from the environment, loudly: a bad value names its variable."""

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env(name: str, default: str) -> str:
    """The variable's value, or the contents of the file named by NAME_FILE, or the default."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from None
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = env(name, "1" if default else "0").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}")


def envint(name: str, default: int) -> int:
    value = env(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {value!r}") from None


def envfloat(name: str, default: float) -> float:
    value = env(name, str(default))
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number; got {value!r}") from None


def envlist(name: str) -> list[str]:
    """A comma-separated variable as a list, empty items dropped."""
    return [item.strip() for item in env(name, "").split(",") if item.strip()]


def read_or_create_secret_file(path: Path, kind: str) -> str:
    """Read a generated secret, creating it (mode 0600, never overwritten) on first start."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = Fernet.generate_key().decode() if kind == "fernet" else secrets.token_urlsafe(50)
    try:
        # O_EXCL: when two processes start at once, exactly one writes the file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
