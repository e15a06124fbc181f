"""Settings for the mqant site: one process, SQLite and the in-memory channel layer by default.

Environment variables:
    DJANGO_SECRET_KEY   the secret key: required to serve unless DJANGO_DEBUG=1 (a public
                        development key is used when unset, which the server refuses)
    DJANGO_DEBUG        "1" for debug mode, for development only (default off); `make run`
                        turns it on
    DJANGO_ALLOWED_HOSTS comma-separated host names (default: loopback names)
    DJANGO_HTTPS        "1" when clients reach the site over HTTPS only (TLS here or in a
                        proxy in front): secure cookies, HSTS, redirects from plain HTTP
    DJANGO_HSTS_SECONDS with DJANGO_HTTPS, the HSTS max-age (default a year)
    DJANGO_CSRF_TRUSTED_ORIGINS comma-separated origins (https://chat.example.com) trusted for
                        unsafe requests, when a proxy changes the host the browser used
    DJANGO_NUM_PROXIES  proxies in front of this process that set X-Forwarded-For (default 0):
                        the REST API's throttles and login lockout count per client address
    REDIS_URL           runs over Redis: channels-redis carries RPC, session changes and
                        broadcasts between processes, and live module nodes are registered there
    MQANT_REDIS_LAYER   with REDIS_URL, "pubsub" (mqant.redis.layer, the default), "core"
                        (RedisChannelLayer) or "channels-pubsub" (channels-redis's
                        RedisPubSubChannelLayer); bench/rpc.py measures them
    MQANT_REDIS_PREFIX  with REDIS_URL, the prefix of every Redis key and channel (default
                        "mqant"): deployments sharing one Redis use different ones
    DATABASE_URL        a database URL (postgres://user:password@host:5432/name) instead of SQLite
    SQLITE_PATH         where the SQLite database lives (default: db.sqlite3 beside manage.py)
    MQANT_CONFIG        the deployment file, mqant's server.conf format (see mqant/config.py)
    MQANT_PROCESS_ID    this process's ProcessID in that file (default "development")
    MQANT_SETTINGS      a JSON object merged over the MQANT settings below
    MQANT_EXTRA_APPS    comma-separated Django apps (with modules) added to INSTALLED_APPS
    MQANT_LOGIN_AUTO_REGISTER "0" to refuse unknown user names at Login/HD_Login instead of
                        registering them (default "1", as mqant's clients expect)
    MQANT_LOG_LEVEL     the level of the mqant and gate loggers (default INFO)
"""

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

# Public, so never a production key: mqant.security refuses to serve with it unless DEBUG is on.
DEVELOPMENT_SECRET_KEY = "django-insecure-development-key-change-me-in-production"  # noqa: S105
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or DEVELOPMENT_SECRET_KEY
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [
    origin for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if origin
]

# Error pages and reports mask credentials wherever they appear in a setting (the database
# and Redis URLs, in CACHES, CHANNEL_LAYERS and MQANT too), not only under secret-looking names.
DEFAULT_EXCEPTION_REPORTER_FILTER = "mqant.security.CredentialMaskingFilter"
X_FRAME_OPTIONS = "DENY"
if os.environ.get("DJANGO_HTTPS", "0") == "1":
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = True
    if int(os.environ.get("DJANGO_NUM_PROXIES", "0")):
        # TLS ends at the proxy, which says so in X-Forwarded-Proto.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served here: no CDN
    "channels",
    "mqant",
    "gate",
    "sessions_store",
    "login",
    "chat",
    "helloworld",
    "api",
]
# MQANT_EXTRA_APPS: comma-separated apps (modules) to add, e.g. "mygame" on one process.
INSTALLED_APPS += [app for app in os.environ.get("MQANT_EXTRA_APPS", "").split(",") if app]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, the chat page's) from the ASGI process itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mqantsite.urls"

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
            ],
        },
    },
]

ASGI_APPLICATION = "mqantsite.asgi.application"

DATABASES: dict[str, Any] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {
            # Module handlers write from worker threads while the gate reads: wait for the
            # lock instead of failing at once with "database is locked".
            "timeout": 20,
            # Write-ahead log: readers do not wait for writers, and a commit appends to the
            # log without an fsync of its own (the log is synced at checkpoints), which made
            # every chat message cost a disk flush. A power cut may lose the last commits;
            # the database stays consistent.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            # Take the write lock at BEGIN: a read upgraded to a write can fail at once.
            "transaction_mode": "IMMEDIATE",
        },
        # Keep a worker thread's connection instead of opening one for every call.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    # Handlers run in worker threads that keep their connection a while (checked before
    # reuse): a module process does not reconnect for every call.
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
    }

# No client-side socket timeout. redis-py 8 defaults to 5 s, and the core layer's receive
# is a BZPOPMIN that blocks up to 5 s when idle: every idle consumer then died of a
# TimeoutError (channels_redis#422). Any timeout also makes redis-py write through
# asyncio.wait_for, which on Python 3.11 loses a cancellation that lands as the write
# completes (fixed in 3.12): a cancelled receive, as Channels cancels one whenever a client
# disconnects, then never ends. A dead Redis is noticed by TCP keepalive instead.
REDIS_SOCKET_TIMEOUT = None
# Probe after 10 s of silence, every 5 s, drop the connection after 3 unanswered probes
# (where the platform names these options).
REDIS_KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}
# Connections a process may open to Redis at once. redis-py 8 caps a pool at 100 and then
# fails at once (MaxConnectionsError): the core layer holds one per send in progress, so a
# burst of 100 concurrent calls from one process failed.
REDIS_MAX_CONNECTIONS = 1000
REDIS_LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    # channels-redis's pub/sub layer over leaner connections, same wire (mqant/redis/layer.py)
    "pubsub": "mqant.redis.layer.RedisPubSubChannelLayer",
    # channels-redis's own, for hosts the one above does not support (sentinels)
    "channels-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def redis_channel_layer(url: str, kind: str = "pubsub", prefix: str = "mqant") -> dict[str, Any]:
    """The CHANNEL_LAYERS entry for channels-redis at ``url``: ``kind`` names the layer
    (REDIS_LAYERS), ``prefix`` starts its keys and channel names."""
    if kind not in REDIS_LAYERS:
        raise ValueError(f"MQANT_REDIS_LAYER must be one of {sorted(REDIS_LAYERS)}, got {kind!r}")
    if not re.fullmatch(r"[A-Za-z0-9_\-.]+", prefix):
        raise ValueError(f"MQANT_REDIS_PREFIX must use letters, digits, '_-.', got {prefix!r}")
    host = {
        "address": url,
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "socket_keepalive_options": REDIS_KEEPALIVE,
        "max_connections": REDIS_MAX_CONNECTIONS,
    }
    config: dict[str, Any] = {"hosts": [host], "prefix": f"{prefix}.asgi."}
    if kind == "core":
        # Like the in-memory layer: many connections share a process, so a busy channel
        # holds more than channels-redis's default 100 messages before sends fail.
        config["capacity"] = 1000
    return {"BACKEND": REDIS_LAYERS[kind], "CONFIG": config}


REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_PREFIX = os.environ.get("MQANT_REDIS_PREFIX", "mqant")
CHANNEL_LAYERS: dict[str, Any]
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            REDIS_URL, os.environ.get("MQANT_REDIS_LAYER", "pubsub"), REDIS_PREFIX
        )
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            # Many connections share one process: do not drop pushes to a busy one early.
            "CONFIG": {"capacity": 1000},
        }
    }

# Every password check (the admin's login form included) through mqant's account policy:
# per-address budgets, the lockout, hashing on a pool of its own (mqant/accounts/).
AUTHENTICATION_BACKENDS = ["mqant.accounts.backends.AccountPolicyBackend"]
# Proxies in front of this process that set X-Forwarded-For: the client address that
# budgets, lockouts and throttles count is the one the outermost proxy saw.
NUM_PROXIES = int(os.environ.get("DJANGO_NUM_PROXIES", "0"))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The REST API (api/): tokens for API clients, the session (with CSRF) for the chat page.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",  # first: 401 + WWW-Authenticate
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Every malformed JSON body a 400 (DRF's own parser let a RecursionError through).
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Logins and registrations are limited per address by mqant.accounts (one budget for
    # every way in: mqant.conf's LOGIN_RATE_PER_ADDRESS and REGISTER_RATE_PER_ADDRESS).
    # The client address is REMOTE_ADDR: with None, DRF would trust any X-Forwarded-For, so a
    # client could pick its own address. Behind proxies, set the number of them.
    "NUM_PROXIES": NUM_PROXIES,
    # A dependency that is down (the database, Redis): 503 with a short JSON body.
    "EXCEPTION_HANDLER": "api.exceptions.handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mqant-django API",
    "DESCRIPTION": "Accounts for the chat: register, log in (an API token and the browser's "
    "session), log out. The realtime side is MQTT at /mqtt.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Logins refused after repeated failures (login/lockout.py): per user name, per address.
LOGIN_LOCKOUT = {"USER_FAILURES": 5, "IP_FAILURES": 20, "WINDOW": 900, "DURATION": 900}
if REDIS_URL:
    # Throttle and lockout counts shared by every process.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
            # A hung Redis costs a count 2 s at most; then mqant.counters counts in memory.
            "OPTIONS": {"socket_timeout": 2.0, "socket_connect_timeout": 2.0},
        }
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [path for path in [BASE_DIR / "static"] if path.is_dir()]
# Serve straight from the apps' and static/ folders, no collectstatic needed to start.
WHITENOISE_USE_FINDERS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# mqant: the gate, the module framework and the demo modules. Every key is optional;
# mqant.conf holds the defaults and the meaning of each.
MQANT: dict[str, Any] = {
    "MODULE_SETTINGS": {
        "Login": {"AutoRegister": os.environ.get("MQANT_LOGIN_AUTO_REGISTER", "1") == "1"},
    },
}
if REDIS_URL:
    # Module nodes of every process, registered in Redis with a heartbeat.
    MQANT["REGISTRY"] = {
        "BACKEND": "mqant.redis.registry.RedisNodeRegistry",
        "CONFIG": {"url": REDIS_URL, "prefix": REDIS_PREFIX},
    }

# MQANT_SETTINGS: a JSON object merged over MQANT, e.g. '{"TCP_ADDR": "0.0.0.0:3563"}'.
MQANT.update(json.loads(os.environ.get("MQANT_SETTINGS") or "{}"))

# One handler, behind a filter that bounds what clients can make the process log: at most 20
# lines of one kind at once, then one a second, the rest counted (mqant/logs.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"rate_limit": {"()": "mqant.logs.RateLimitFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["rate_limit"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Django's own handlers (console in DEBUG, mail_admins) off: everything goes to ours.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "mqant": {"level": os.environ.get("MQANT_LOG_LEVEL", "INFO")},
        "gate": {"level": os.environ.get("MQANT_LOG_LEVEL", "INFO")},
    },
}
