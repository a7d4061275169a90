"""LLMHub settings: every value comes from the environment, with defaults that run a fresh checkout.

With nothing set, everything lives in the data folder (LLMHUB_DATA_DIR, default ./data): the SQLite
database, a generated Django secret key and a generated credential encryption key (both mode 0600).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from llmhub.environment import env, envbool, envfloat, envint, envlist, read_or_create_secret_file

BASE_DIR = Path(__file__).resolve().parent.parent

# ---- Data folder and generated secrets
DATA_DIR = Path(env("LLMHUB_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env("DJANGO_SECRET_KEY", "") or read_or_create_secret_file(
    DATA_DIR / "secret_key", kind="django"
)

# Credential encryption keys, newest first: the first encrypts, all of them decrypt (MultiFernet),
# so a key is rotated by putting a new one in front and running `manage.py rotate_credentials`.
LLMHUB_ENCRYPTION_KEYS = (
    envlist("LLMHUB_ENCRYPTION_KEYS")
    or read_or_create_secret_file(DATA_DIR / "encryption.key", kind="fernet").split()
)

DEBUG = envbool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS") or ["127.0.0.1", "localhost", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")

# ---- Applications
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "template_partials",
    "accounts",
    "audit",
    "automations",
    "providers",
    "usage",
    "gateway",
    "ops",
]

MIDDLEWARE = [
    # First: every response, static files and redirects included, carries its request id and is counted.
    "ops.middleware.RequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.first_run.FirstRunMiddleware",
]

ROOT_URLCONF = "llmhub.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "llmhub.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.team",
            ],
            "builtins": [
                "template_partials.templatetags.partials",
                "django.contrib.humanize.templatetags.humanize",
                "providers.templatetags.money",
            ],
        },
    }
]

# ---- Database: SQLite in the data folder, or PostgreSQL (or any) from DATABASE_URL
DATABASE_URL = env("DATABASE_URL", "")
SQLITE_OPTIONS = {
    # WAL lets readers work while a run writes; IMMEDIATE takes the write lock when a transaction
    # starts, so two budget reservations can never interleave.
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
if DATABASE_URL:
    # Seconds a server connection is kept for reuse (0: one per request, e.g. behind pgbouncer).
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("LLMHUB_DB_CONN_MAX_AGE", 60))
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"].update(CONN_MAX_AGE=0, OPTIONS=SQLITE_OPTIONS)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "llmhub.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
            # Kept open: the threads runs reserve budgets on would otherwise reopen the file, with
            # its set-up, for every run (bench/gateway.py: ~1.5 ms a request).
            "CONN_MAX_AGE": None,
            "TEST": {"NAME": str(DATA_DIR / "test.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---- Channels: in-memory for one process, Redis when scaled out
REDIS_URL = env("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# ---- Auth
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

# ---- Time and language
LANGUAGE_CODE = "en-us"
TIME_ZONE = env("LLMHUB_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# ---- Static files: our own in static/, npm assets copied to static/vendor/ at set-up
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("LLMHUB_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# ---- Providers
# Declarative provider definitions (TOML); providers.d/*.toml beside the file is read too.
LLMHUB_PROVIDERS_FILE = env("LLMHUB_PROVIDERS_FILE", "")
# tiktoken reads its encoding files from here; `manage.py install_tokenizers` fills it at set-up.
LLMHUB_TOKENIZER_DIR = Path(env("LLMHUB_TOKENIZER_DIR", str(BASE_DIR / "var" / "tiktoken")))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(LLMHUB_TOKENIZER_DIR))
LLMHUB_VALIDATION_TIMEOUT = envint("LLMHUB_VALIDATION_TIMEOUT", 5)
LLMHUB_REQUEST_TIMEOUT = envint("LLMHUB_REQUEST_TIMEOUT", 600)
# The largest /v1/chat/completions body accepted (8 MiB holds a 1M-token prompt); larger gets a 400.
LLMHUB_API_MAX_BODY_BYTES = envint("LLMHUB_API_MAX_BODY_BYTES", 8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = LLMHUB_API_MAX_BODY_BYTES
# Retries wait base × 2^attempt seconds plus jitter, or the provider's retry-after when it says.
LLMHUB_RETRY_BASE_SECONDS = float(env("LLMHUB_RETRY_BASE_SECONDS", "1"))

# ---- Email and logging
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", "llmhub@localhost")

# "text" (the message alone) or "json": one JSON object a line, for a log collector. Either way, one
# line per request (logger llmhub.requests) and per run (llmhub.runs), secrets redacted.
LLMHUB_LOG_FORMAT = env("LLMHUB_LOG_FORMAT", "text").strip().lower()
if LLMHUB_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LLMHUB_LOG_FORMAT must be text or json; got {LLMHUB_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"()": "ops.logs.TextFormatter"},
        "json": {"()": "ops.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LLMHUB_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LLMHUB_LOG_LEVEL", "INFO")},
    # httpx logs every request line at INFO; the lines hold no credentials, but they are noise.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# ---- Operations: metrics, health, retention
# /metrics wants `Authorization: Bearer <token>` when this is set; without it, only loopback clients
# that did not come through a proxy may read it. Several server processes: see PROMETHEUS_MULTIPROC_DIR.
LLMHUB_METRICS_TOKEN = env("LLMHUB_METRICS_TOKEN", "")
# Seconds /readyz waits for the channel layer (Redis) before it calls it unreachable.
LLMHUB_READY_TIMEOUT = envfloat("LLMHUB_READY_TIMEOUT", 2.0)
# Days a run's prompt and output are kept; 0 keeps them forever. Usage rows and roll-ups always stay.
LLMHUB_RETENTION_DAYS = envint("LLMHUB_RETENTION_DAYS", 0)
# Seconds between two passes of retention in each server process.
LLMHUB_RETENTION_INTERVAL = envint("LLMHUB_RETENTION_INTERVAL", 3600)
# Periodic work (retention) in each server process; off: only the management commands do it.
LLMHUB_BACKGROUND_TASKS = envbool("LLMHUB_BACKGROUND_TASKS", True)

if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY is empty")
if os.environ.get("LLMHUB_ENCRYPTION_KEYS") is not None and not LLMHUB_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("LLMHUB_ENCRYPTION_KEYS is set but holds no key")
if LLMHUB_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("LLMHUB_RETENTION_DAYS must be 0 (keep forever) or a number of days")
if LLMHUB_RETENTION_INTERVAL < 1:
    raise ImproperlyConfigured("LLMHUB_RETENTION_INTERVAL must be at least 1 (seconds)")
