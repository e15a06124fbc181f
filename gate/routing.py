"""WebSocket routes of the gate."""

from django.urls import path

from gate.consumers import MQTTConsumer

websocket_urlpatterns = [
    path("mqtt", MQTTConsumer.as_asgi()),
]
