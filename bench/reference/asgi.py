"""``daphne bench.reference.asgi:application``: the textbook echo at ``/mqtt``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.reference.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - after django setup
from django.urls import path  # noqa: E402

from bench.reference.consumers import EchoConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter([path("mqtt", EchoConsumer.as_asgi())]),
    }
)
