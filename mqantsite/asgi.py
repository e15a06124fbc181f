"""ASGI entry point: ``daphne mqantsite.asgi:application`` serves HTTP (admin, REST, static
files) and MQTT over WebSocket at ``/mqtt`` on one process."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mqantsite.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402 - after django setup

from gate import daphne_guard, drain, process, tcp  # noqa: E402
from gate.routing import websocket_application  # noqa: E402
from mqant.asgi import BodyLimit, MqantApplication  # noqa: E402

# Under daphne, limits on its sockets (per-address count, request time, reads, pings).
daphne_guard.install()

application = MqantApplication(
    ProtocolTypeRouter(
        {
            "http": BodyLimit(django_application),
            "websocket": websocket_application(),
        }
    ),
    # The gate's parts of the runtime: its inbox and its heartbeat (gate/process.py).
    parts=process.parts,
    on_startup=[tcp.start_listener],
    # Drains the gate (gate/drain.py); the modules stop after it.
    on_shutdown=[drain.stop],
)
