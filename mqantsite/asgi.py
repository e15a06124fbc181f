"""ASGI entry point: ``daphne mqantsite.asgi:application`` serves HTTP (admin, REST, static
files) and MQTT over WebSocket at ``/mqtt`` on one process."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mqantsite.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - after django setup

from gate import connection, keeper, tcp  # noqa: E402
from gate.routing import websocket_urlpatterns  # noqa: E402
from mqant.asgi import MqantApplication  # noqa: E402

application = MqantApplication(
    ProtocolTypeRouter(
        {
            "http": django_application,
            "websocket": URLRouter(websocket_urlpatterns),
        }
    ),
    on_startup=[tcp.start_listener],
    on_shutdown=[tcp.stop_listeners, connection.end_all, keeper.drain],
)
