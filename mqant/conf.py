"""The framework's settings: ``settings.MQANT`` over these defaults."""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Seconds a caller waits for an RPC reply (mqant: 10 s); a later reply is dropped.
    "RPC_TIMEOUT": 10.0,
    # Call a module hosted by this process directly instead of through the channel layer.
    # Same semantics either way; False forces every call through the layer.
    "RPC_LOCAL_SHORTCUT": True,
    # Module types this process hosts; None hosts every registered module.
    "MODULES": None,
    # Per module type, the settings handed to Module.on_init.
    "MODULE_SETTINGS": {},
    # Gate: calls in flight per connection before "the work queue is full!" (mqant: 20).
    "MAX_CALLS_IN_FLIGHT": 20,
    # Gate: largest MQTT packet accepted, fixed header included (mqant: 65535).
    "MAX_PACKET_SIZE": 65535,
    # Gate: seconds a new connection has to send CONNECT (mqant: 10).
    "CONNECT_TIMEOUT": 10.0,
    # Gate: seconds of silence before a client with keepalive 0 is closed.
    "IDLE_TIMEOUT": 300.0,
}


def get(name: str) -> Any:
    """The value of ``settings.MQANT[name]``, or its default; KeyError for an unknown name."""
    overrides: dict[str, Any] = getattr(settings, "MQANT", {})
    if name in overrides:
        return overrides[name]
    return DEFAULTS[name]
