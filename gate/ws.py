"""What the gate's two WebSocket transports share (daphne's or uvicorn's WebSocket through
gate.consumers, and the gate's own port through gate.wsserver): the subprotocols, the close
codes, and which paths carry MQTT."""

from gate import conf

MQTT_SUBPROTOCOLS = ("mqtt", "mqttv3.1")

# WebSocket close codes. A text frame gets 4003, mirroring 1003 in the application range.
# A client the limits refuse gets 1013, "try again later" (IANA's registry), and every client
# of a stopping server 1001, "going away". 1008 "policy violation" closes a client past its
# ping budget.
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
UNSUPPORTED_DATA = 4003


def choose_subprotocol(offered: list[str]) -> str | None:
    """The first MQTT subprotocol the client offered; else its first offer, as mqant does."""
    for name in offered:
        if name in MQTT_SUBPROTOCOLS:
            return name
    return offered[0] if offered else None


def carries_mqtt(path: str) -> bool:
    """Whether a handshake on ``path`` (its query string left out) is an MQTT connection:
    every path unless ``MQANT["WS_PATHS"]`` names them."""
    paths = conf.get("WS_PATHS")
    return paths is None or path.partition("?")[0] in paths
