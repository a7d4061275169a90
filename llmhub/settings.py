"""LLMHub settings: every value comes from the environment, with defaults that run a fresh checkout.

With nothing set, everything lives in the data folder (LLMHUB_DATA_DIR, default ./data): the SQLite
database, a generated Django secret key and a generated credential encryption key (both mode 0600).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from llmhub.environment import (
    create_private_file,
    create_private_folder,
    env,
    envbool,
    envfloat,
    envint,
    envlist,
    envnetworks,
    envseconds,
    read_or_create_secret_file,
    read_secret_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# ---- Data folder and generated secrets
DATA_DIR = Path(env("LLMHUB_DATA_DIR", str(BASE_DIR / "data"))).resolve()
create_private_folder(DATA_DIR)  # 0700: it holds the database and the keys

SECRET_KEY = env("DJANGO_SECRET_KEY", "") or read_or_create_secret_file(
    DATA_DIR / "secret_key", kind="django"
)

# Credential encryption keys, newest first: the first encrypts, all of them decrypt (MultiFernet),
# so a key is rotated by putting a new one in front and running `manage.py rotate_credentials`.
# Without LLMHUB_ENCRYPTION_KEYS, the key file; it is created when the first credential is saved,
# never while credentials are stored (providers/keyfile.py: a lost file is an error, not a new key).
LLMHUB_ENCRYPTION_KEY_FILE = DATA_DIR / "encryption.key"
LLMHUB_ENCRYPTION_KEYS = (
    envlist("LLMHUB_ENCRYPTION_KEYS") or read_secret_file(LLMHUB_ENCRYPTION_KEY_FILE).split()
)

DEBUG = envbool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS") or ["127.0.0.1", "localhost", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")

# ---- HTTPS (README: "Running it on a network"). Behind a reverse proxy that ends TLS, name the
# header it sets (X-Forwarded-Proto) so the hub knows a request came over HTTPS.
LLMHUB_HTTPS = envbool("LLMHUB_HTTPS", False)
if proto_header := env("LLMHUB_FORWARDED_PROTO_HEADER", ""):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + proto_header.upper().replace("-", "_"), "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = LLMHUB_HTTPS
SECURE_SSL_REDIRECT = envbool("LLMHUB_SSL_REDIRECT", LLMHUB_HTTPS)
SECURE_HSTS_SECONDS = envint("LLMHUB_HSTS_SECONDS", 31_536_000 if LLMHUB_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("LLMHUB_HSTS_INCLUDE_SUBDOMAINS", LLMHUB_HTTPS)
SECURE_HSTS_PRELOAD = envbool("LLMHUB_HSTS_PRELOAD", LLMHUB_HTTPS)
SESSION_COOKIE_HTTPONLY = True

# ---- Applications
INSTALLED_APPS = [
    "daphne",
    "llmhub",  # start-up checks: encryption keys, file modes
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
    "csp",
    "axes",
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
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.first_run.FirstRunMiddleware",
    # Last: it turns a lockout raised while signing in into the lockout page.
    "axes.middleware.AxesMiddleware",
]
# /v1/'s own, shorter list (llmhub/api_handler.py says what it skips and why): async-only, no thread hop.
LLMHUB_API_MIDDLEWARE = [
    "ops.middleware.RequestMiddleware",
    "llmhub.api_handler.SecurityMiddleware",
    "llmhub.api_handler.CommonMiddleware",
]

# Content-Security-Policy on every page (django-csp): scripts and styles from the hub's own static
# files only, never inline; no plugins, no framing, forms post only to the hub.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],  # 'self' includes the page's own ws:// and wss:// (CSP level 3)
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

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
    # Seconds a write waits for another's lock before "database is locked": a settlement holds it
    # for milliseconds, so this only runs out when something holds the database far too long.
    "timeout": envfloat("LLMHUB_SQLITE_BUSY_TIMEOUT", 20),
}
# Django's SQLite backend, plus: a connection that failed (read-only, locked) is reopened.
SQLITE_ENGINE = "llmhub.sqlite"
# Django's PostgreSQL backend, plus: a kept connection the server closed is reopened before its use.
POSTGRESQL_ENGINE = "llmhub.postgresql"
if DATABASE_URL:
    # Seconds a server connection is kept for reuse (0: one per request, e.g. behind pgbouncer).
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("LLMHUB_DB_CONN_MAX_AGE", 60))
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"].update(ENGINE=SQLITE_ENGINE, CONN_MAX_AGE=0, OPTIONS=SQLITE_OPTIONS)
    elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # A kept connection the server has closed (a fail-over, a restart) is noticed and reopened
        # before its next use, instead of failing a request (llmhub/postgresql: no round trip).
        DATABASES["default"].update(ENGINE=POSTGRESQL_ENGINE, CONN_HEALTH_CHECKS=True)
        if DATABASES["default"]["CONN_MAX_AGE"] != 0:
            # A kept connection prepares the hot path's statements at their first use, so that only
            # their values travel afterwards (llmhub/statements.py; the ORM's client-side binding
            # never prepares). A connection closed after each use prepares nothing: behind pgbouncer
            # in transaction mode, the next transaction may be on another server connection.
            DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 0)
else:
    # Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
    create_private_file(DATA_DIR / "llmhub.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": SQLITE_ENGINE,
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
            # redis-py 8 times out a read after 5 s by default, exactly as long as channels_redis's
            # blocking wait for a message (BZPOPMIN, 5 s): every idle websocket and every run's wait
            # for a cancel died "Timeout reading". The read may take the wait and a margin; a Redis
            # that stops answering is still noticed.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
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
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out account or address first
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in lockout (django-axes): after this many failures for one account, or from one address,
# both are refused (the right password too) until the cool-off has passed. Audited.
AXES_FAILURE_LIMIT = envint("LLMHUB_SIGNIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LLMHUB_SIGNIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # the audit log records each failure and lockout
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "accounts.clients.client_address"
# Reverse proxies in front of the hub that append the client's address to X-Forwarded-For.
LLMHUB_TRUSTED_PROXIES = envint("LLMHUB_TRUSTED_PROXIES", 0)
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
# An invitation link to a team works once, for this many days.
LLMHUB_INVITATION_DAYS = envint("LLMHUB_INVITATION_DAYS", 7)

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
# Addresses (CIDRs such as 192.168.1.0/24, or host names) on the hub's own network that any team
# admin may point a provider at; otherwise only a site admin may (providers/network.py).
LLMHUB_ALLOWED_PRIVATE_NETWORKS = envnetworks("LLMHUB_ALLOWED_PRIVATE_NETWORKS")
LLMHUB_VALIDATION_TIMEOUT = envint("LLMHUB_VALIDATION_TIMEOUT", 5)
LLMHUB_REQUEST_TIMEOUT = envint("LLMHUB_REQUEST_TIMEOUT", 600)
# The largest /v1/chat/completions body accepted (8 MiB holds a 1M-token prompt); larger gets a 400.
LLMHUB_API_MAX_BODY_BYTES = envint("LLMHUB_API_MAX_BODY_BYTES", 8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = LLMHUB_API_MAX_BODY_BYTES
# Wrong API keys one address may send in a minute before it is answered 429 (gateway/keys.py).
LLMHUB_API_KEY_FAILURES_PER_MINUTE = envint("LLMHUB_API_KEY_FAILURES_PER_MINUTE", 20)
# The window of the requests- and tokens-per-minute limits of API keys and teams (gateway/ratelimits.py):
# it opens with a key's (or team's) first request and its counts start again once it is over.
LLMHUB_RATE_LIMIT_WINDOW_SECONDS = envseconds("LLMHUB_RATE_LIMIT_WINDOW_SECONDS", 60)
# Browser programs on these origins (https://app.example.com, comma-separated) may call /v1/ with
# their own API key (django-cors-headers). Empty, the default: no CORS headers, no preflight answers.
LLMHUB_CORS_ORIGINS = envlist("LLMHUB_CORS_ORIGINS")
if LLMHUB_CORS_ORIGINS:
    INSTALLED_APPS.append("corsheaders")
    MIDDLEWARE.insert(1, "corsheaders.middleware.CorsMiddleware")  # before CommonMiddleware, as it asks
    LLMHUB_API_MIDDLEWARE.insert(1, "corsheaders.middleware.CorsMiddleware")
CORS_ALLOWED_ORIGINS = LLMHUB_CORS_ORIGINS
CORS_URLS_REGEX = r"^/v1/"  # the pages are same-origin only, signed in by cookie
CORS_ALLOW_CREDENTIALS = False  # a browser program sends its key, never the hub's session cookie
# The headers the OpenAI and Anthropic SDKs send from a browser, the API key headers among them.
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "x-api-key",
    "api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
    "x-request-id",
    "x-stainless-arch",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
    "x-stainless-helper-method",
]
CORS_EXPOSE_HEADERS = ["retry-after", "x-request-id"]
CORS_PREFLIGHT_MAX_AGE = 600
# Retries wait base × 2^attempt seconds plus jitter, or the provider's retry-after when it says.
LLMHUB_RETRY_BASE_SECONDS = float(env("LLMHUB_RETRY_BASE_SECONDS", "1"))

# ---- Settlements the database could not take (usage/records.py): retried, then spooled to a file
# and written when the database is back, by every server process every few seconds.
LLMHUB_SETTLE_RETRIES = envint("LLMHUB_SETTLE_RETRIES", 3)
LLMHUB_SETTLE_RETRY_SECONDS = envfloat("LLMHUB_SETTLE_RETRY_SECONDS", 0.25)  # tripled each retry
LLMHUB_SPOOL_PATH = Path(env("LLMHUB_SPOOL_PATH", str(DATA_DIR / "settlements.spool")))
LLMHUB_SPOOL_REPLAY_SECONDS = envfloat("LLMHUB_SPOOL_REPLAY_SECONDS", 30)

# ---- Circuit breaker (providers/breaker.py): after this many failures in a row a provider is
# skipped for the cooling-off period, then one probe request decides.
LLMHUB_BREAKER_FAILURES = envint("LLMHUB_BREAKER_FAILURES", 5)
LLMHUB_BREAKER_COOLDOWN_SECONDS = envint("LLMHUB_BREAKER_COOLDOWN_SECONDS", 60)
# ---- Runs: deadlines, leases, shutdown
# The most a run may take, retries and fallback included; and how long a provider may send no new
# text (keep-alives and empty chunks do not count) before the attempt is stopped.
LLMHUB_RUN_TIME_LIMIT = envseconds("LLMHUB_RUN_TIME_LIMIT", 3600)
LLMHUB_IDLE_TIMEOUT = envseconds("LLMHUB_IDLE_TIMEOUT", 600)
# A running run's hold on the budget lasts this long unless renewed; its text is saved this often.
LLMHUB_RUN_LEASE_SECONDS = envseconds("LLMHUB_RUN_LEASE_SECONDS", 60)
LLMHUB_LEASE_RENEW_SECONDS = envseconds("LLMHUB_LEASE_RENEW_SECONDS", 15)
LLMHUB_CHECKPOINT_SECONDS = envseconds("LLMHUB_CHECKPOINT_SECONDS", 1)
# How often each server looks for runs whose lease ran out (their server died) and ends them.
LLMHUB_RECOVERY_SECONDS = envseconds("LLMHUB_RECOVERY_SECONDS", 15)
# On SIGTERM, how long running runs may take to finish before they are interrupted (and charged).
LLMHUB_SHUTDOWN_GRACE_SECONDS = envseconds("LLMHUB_SHUTDOWN_GRACE_SECONDS", 30)
if LLMHUB_LEASE_RENEW_SECONDS * 2 > LLMHUB_RUN_LEASE_SECONDS:
    raise ImproperlyConfigured("LLMHUB_LEASE_RENEW_SECONDS must be at most half of LLMHUB_RUN_LEASE_SECONDS")

# ---- Email and logging
# The console backend only prints: invitations are then shown as links to pass on by hand. Set
# DJANGO_EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and the host below to send them.
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", "llmhub@localhost")
EMAIL_HOST = env("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = envint("DJANGO_EMAIL_PORT", 25)
EMAIL_HOST_USER = env("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("DJANGO_EMAIL_USE_TLS", False)

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
