"""A project's ASGI application with the gate, in one call (docs/project.md)::

    # mysite/asgi.py
    import os

    from django.core.asgi import get_asgi_application

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    django_application = get_asgi_application()

    from gate.asgi import mqant_application  # after Django is set up

    application = mqant_application(django_application)

What it returns serves the project's HTTP (its views, the admin, its REST API) through
mqant.asgi.BodyLimit, MQTT over WebSocket at ``/mqtt`` (gate.routing), and starts and stops
with the server: the runtime (the modules, the gate's inbox and heartbeat), the gate's own
listeners (gate.listeners: MQTT over TCP on ``MQANT["TCP_ADDR"]``, MQTT over WebSocket on
``MQANT["WS_ADDR"]``; a port that cannot be bound stops the server), and on SIGTERM the drain
(gate.drain). Under daphne it also
puts the limits of gate.daphne_guard on daphne's own sockets.
"""

from collections.abc import Sequence
from typing import Any

from channels.routing import ProtocolTypeRouter

from gate import daphne_guard, drain, listeners, process, routing
from mqant.asgi import BodyLimit, Hook, MqantApplication

__all__ = ["mqant_application"]


def mqant_application(
    http: Any,
    *,
    websocket_urlpatterns: Sequence[Any] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> MqantApplication:
    """The ASGI application: ``http`` (the project's, usually ``get_asgi_application()``) for
    HTTP; for WebSocket, the project's own ``websocket_urlpatterns`` (Channels routes, tried
    first), then the gate's. ``on_startup`` hooks run after the gate's listeners start,
    ``on_shutdown`` hooks after the gate has drained, before the modules stop."""
    daphne_guard.install()  # under daphne only; imported before daphne listens
    return MqantApplication(
        ProtocolTypeRouter(
            {
                "http": BodyLimit(http),
                "websocket": routing.websocket_application(websocket_urlpatterns),
            }
        ),
        # The gate's parts of the runtime: its inbox and its heartbeat (gate/process.py).
        parts=process.parts,
        on_startup=[listeners.start, *on_startup],
        on_shutdown=[drain.stop, *on_shutdown],
        service_name="mqant-gate",  # of its spans, unless OTEL_SERVICE_NAME says otherwise
    )
