"""Settings for the textbook echo server: the least a Channels project needs."""

SECRET_KEY = "bench-reference-not-secret"  # noqa: S105 - a loopback benchmark server
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = ["daphne", "channels"]

ASGI_APPLICATION = "bench.reference.asgi.application"

# A real project has a database, and Channels closes its stale connections around every
# message it dispatches: keep one so that cost is counted, without a file on disk.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.InMemoryChannelLayer",
        "CONFIG": {"capacity": 1000},  # the product's capacity, so fan-out compares fairly
    }
}

TIME_ZONE = "UTC"
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
