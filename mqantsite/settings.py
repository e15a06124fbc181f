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
                        broadcasts between processes, live module nodes are registered there,
                        and persistent MQTT sessions' queued pushes are kept there
    MQANT_REDIS_LAYER   with REDIS_URL, "pubsub" (mqant.redis.layer, the default), "core"
                        (RedisChannelLayer) or "channels-pubsub" (channels-redis's
                        RedisPubSubChannelLayer); bench/rpc.py measures them
    MQANT_REDIS_PREFIX  with REDIS_URL, the prefix of every Redis key and channel (default
                        "mqant"): deployments sharing one Redis use different ones
    DATABASE_URL        a database URL (postgres://user:password@host:5432/name) instead of SQLite
    SQLITE_PATH         where the SQLite database lives (default: db.sqlite3 beside manage.py)
    MQANT_CONFIG        the deployment file, mqant's server.conf format (see mqant/config.py)
    MQANT_PROCESS_ID    this process's ProcessID in that file (default "development")
    MQANT_REUSE_PORT    "1": MQANT["REUSE_PORT"], gate processes sharing the gate's own ports
    MQANT_PROXY_PROTOCOL_FROM comma-separated addresses or networks: MQANT["PROXY_PROTOCOL_FROM"]
    MQANT_SETTINGS      a JSON object merged over the MQANT settings below
    MQANT_EXTRA_APPS    comma-separated Django apps (with modules) added to INSTALLED_APPS
    MQANT_LOGIN_AUTO_REGISTER "0" to refuse unknown user names at Login/HD_Login instead of
                        registering them (default "1", as mqant's clients expect)
    MQANT_LOG_LEVEL     the level of the mqant and gate loggers (default INFO)
    MQANT_METRICS_TOKEN the bearer token a scraper brings to GET /metrics (at least 24
                        characters; unset, a gate leaves /metrics to Django: 404)
    MQANT_LOG_FORMAT    "text" (the default) or "json": one JSON object per line, with the
                        trace, session and user ids of the connection or call it is about
    OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME...: OpenTelemetry's
                        own variables; an exporter named turns tracing on (mqant/tracing.py)
"""

import json
import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from mqant import project

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
    # The framework's apps: "mqant", "gate", "sessions_store".
    *project.INSTALLED_APPS,
    "login",
    "chat",
    "helloworld",
    "hitball",
    "xaxb",
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

# SQLite beside manage.py, set up for a server (mqant.project.sqlite_database), or the
# database DATABASE_URL names.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES = {
    "default": project.database(
        DATABASE_URL, os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
    )
}

# The channel layer in memory (one process), or over Redis with the options mqant.project
# explains (no socket timeout, keepalive, a larger pool).
REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_PREFIX = os.environ.get("MQANT_REDIS_PREFIX", "mqant")
CHANNEL_LAYERS = project.channel_layers(
    REDIS_URL, os.environ.get("MQANT_REDIS_LAYER", "pubsub"), REDIS_PREFIX
)

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
# Throttle and lockout counts shared by every process over Redis (mqant.project.caches).
CACHES = project.caches(REDIS_URL, REDIS_PREFIX)

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
# /metrics for a scraper that brings this bearer token (mqant.scrape); unset: no /metrics.
if os.environ.get("MQANT_METRICS_TOKEN"):
    MQANT["METRICS_TOKEN"] = os.environ["MQANT_METRICS_TOKEN"]
# Module nodes of every process, registered in Redis with a heartbeat, with REDIS_URL.
MQANT["REGISTRY"] = project.registry(REDIS_URL, REDIS_PREFIX)
# Persistent MQTT sessions' queued pushes, in Redis with REDIS_URL (any gate process finds them).
MQANT["SESSION_QUEUES"] = project.session_queues(REDIS_URL, REDIS_PREFIX)

# Several gate processes on one machine sharing TCP_ADDR and WS_ADDR (SO_REUSEPORT), and the
# proxies whose connections there start with a PROXY protocol header (comma-separated).
if os.environ.get("MQANT_REUSE_PORT", "0") == "1":
    MQANT["REUSE_PORT"] = True
if proxies := os.environ.get("MQANT_PROXY_PROTOCOL_FROM", ""):
    MQANT["PROXY_PROTOCOL_FROM"] = [entry.strip() for entry in proxies.split(",") if entry.strip()]

# MQANT_SETTINGS: a JSON object merged over MQANT, e.g. '{"TCP_ADDR": "0.0.0.0:3563"}'.
MQANT.update(json.loads(os.environ.get("MQANT_SETTINGS") or "{}"))

# One handler, behind a filter that bounds what clients can make the process log: at most 20
# lines of one kind at once, then one a second, the rest counted (mqant/logs.py).
# Each line names the session it is about, when there is one (trace, session and user ids):
# after the text, or as fields of one JSON object per line with MQANT_LOG_FORMAT=json.
LOG_FORMAT = os.environ.get("MQANT_LOG_FORMAT", "text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"Expected MQANT_LOG_FORMAT text or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "rate_limit": {"()": "mqant.logs.RateLimitFilter"},
        "session": {"()": "mqant.logs.SessionFilter"},
    },
    "formatters": {
        "text": {
            "()": "mqant.logs.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {"()": "mqant.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["rate_limit", "session"],
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
