"""The gate's settings: keys of ``settings.MQANT`` over these defaults.

Every limit is a setting; the defaults are what a production deployment would start with.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # "host:port" of the MQTT-over-TCP listener, started with the server; "" turns it off.
    "TCP_ADDR": "127.0.0.1:3563",
    # "host:port" of the gate's own MQTT-over-WebSocket listener (mqant's WSAddr), beside the
    # ASGI server's WebSocket; "" turns it off.
    "WS_ADDR": "127.0.0.1:3653",
    # An operator's port for /metrics (and /healthz, /readyz), without HTTP's other routes,
    # e.g. "127.0.0.1:9100"; "" for none (mqant.health.HealthServer, its bounds).
    "METRICS_ADDR": "",
    # PEM certificate and key: when both are set, the gate's own listeners speak TLS.
    "TLS_CERT": "",
    "TLS_KEY": "",
    # Listen with SO_REUSEPORT on TCP_ADDR and WS_ADDR: several gate processes on one machine
    # share those ports, the kernel spreading new connections among them. Off, a port another
    # process holds stops the server (exit status 3).
    "REUSE_PORT": False,
    # Addresses or networks ("127.0.0.1", "10.0.0.0/8") of proxies whose connections to
    # TCP_ADDR and WS_ADDR start with a PROXY protocol header (v1 or v2) naming the client,
    # whose address the per-address limits then count (gate.admission). Empty: none.
    "PROXY_PROTOCOL_FROM": [],
    # Largest MQTT packet accepted, fixed header included (mqant: 65535). A larger one
    # closes the connection as soon as its header arrives, before its body is buffered.
    "MAX_PACKET_SIZE": 65535,
    # Calls in flight per connection; past it "the work queue is full!" (mqant: 20). MQTT 5
    # clients are told it as the Receive Maximum of their QoS 1-2 PUBLISHes.
    "MAX_CALLS_IN_FLIGHT": 20,
    # Acknowledge a QoS 1 PUBLISH (PUBACK; QoS 2: PUBREC) once its call has finished, with
    # the call's error as the MQTT 5 reason string: an acknowledged call has run. False:
    # at once on receipt, as mqant does (an acknowledged call may then be lost with the
    # process). Acknowledgements go out in the order the PUBLISHes came (MQTT 4.6).
    "ACK_AFTER_HANDLER": True,
    # Topic aliases an MQTT 5 client may use towards the server (announced in CONNACK).
    "TOPIC_ALIAS_MAXIMUM": 16,
    # Persistent sessions (gate.persist): the longest a session outlives its connection, in
    # seconds. MQTT 3.1.1's clean session 0 gets this; MQTT 5's Session Expiry Interval is
    # capped by it. 0: every session ends with its connection (CONNACK session present 0).
    "SESSION_EXPIRY_MAX": 3600.0,
    # Persistent sessions one address may hold in one process, connected or away; past it a
    # CONNECT asking for one is refused (MQTT 5: 0x97 quota exceeded; 3.1.1: code 3). 0: no
    # bound per address (MAX_PERSISTENT_SESSIONS still holds).
    "PERSISTENT_SESSIONS_PER_ADDRESS": 16,
    # Topic filters of the pushes a persistent session gets at QoS 1 (queued while it is
    # away, re-sent until acknowledged), whatever it subscribed to; the others at QoS 0.
    "RELIABLE_PUSHES": ["Chat/OnChat", "Chat/OnJoin", "Chat/OnLeave"],
    # Topic filters of one session that set the QoS of its pushes (SUBSCRIBE); those past it
    # are acknowledged and change nothing.
    "MAX_SUBSCRIPTIONS": 64,
    # Handle one connection's requests strictly one after another, in arrival order
    # (mqant runs them concurrently).
    "ORDERED_CALLS": False,
    # PUBLISHes per second a connection may send, sustained, and in a burst; 0 = no limit.
    # Past it a call is refused ("the message rate is exceeded"); a client that goes on
    # sending through a whole burst's worth of refusals is closed.
    "MESSAGE_RATE": 100.0,
    "MESSAGE_BURST": 200,
    # Bytes waiting to be written to one client; a client that stops reading is closed
    # when they pass this, and nobody else waits for it.
    "MAX_OUTGOING_BYTES": 1024 * 1024,
    # Connections one process holds at once, WebSocket and TCP together.
    "MAX_CONNECTIONS": 10000,
    # CONNECT credentials (CONNECT_AUTH_POLICIES):
    # - "ignore" (mqant's way, the default): they are not read; every client is a guest until
    #   it logs in (Login/HD_Login or a module of yours). mqant's clients send fixed ones
    #   (admin/password): checking them would refuse those clients and, after a few
    #   reconnects, lock a real account of that name out.
    # - "optional": a user name with its password (or a REST token) binds the session at
    #   once; wrong ones get CONNACK 4 and count towards the lockout; no user name: a guest.
    # - "required": as "optional", and a client without a user name is refused (CONNACK 5).
    "CONNECT_AUTH": "ignore",
    # Paths of the WebSocket handshakes that carry MQTT, such as ["/mqtt"]; None: every path
    # (mqant's gate takes any), after the project's own Channels routes. Another path is
    # refused with HTTP 403.
    "WS_PATHS": None,
    # Seconds a new connection has to send CONNECT (mqant: 10).
    "CONNECT_TIMEOUT": 10.0,
    # Seconds of silence before a client with keepalive 0 is closed (others: 1.5 x keepalive).
    "IDLE_TIMEOUT": 300.0,
    # The largest keepalive honoured, in seconds: a client that asks for more (MQTT allows
    # 65535 s, 18 hours) is closed after 1.5 x this of silence, like one that asked for this.
    "MAX_KEEPALIVE": 600,
    # Per client address, per process: MQTT connections at once (WebSocket and TCP together),
    # and new ones per second, sustained and in a burst. Past either, a TCP connection is
    # closed at once and a WebSocket handshake refused (1013). 0 turns a limit off.
    "MAX_CONNECTIONS_PER_ADDRESS": 100,
    "CONNECT_RATE_PER_ADDRESS": 20.0,
    "CONNECT_BURST_PER_ADDRESS": 100,
    # Packets other than PUBLISH (which MESSAGE_RATE meters) per second one connection may
    # send: PINGREQ, SUBSCRIBE, UNSUBSCRIBE, acknowledgements; sustained and in a burst. A
    # client that sends past it is closed.
    "CONTROL_PACKET_RATE": 100.0,
    "CONTROL_PACKET_BURST": 200,
    # Topic filters in one SUBSCRIBE or UNSUBSCRIBE; more is a protocol error (close).
    "MAX_TOPICS_PER_SUBSCRIBE": 64,
    # Bytes per second the server reads from one socket (MQTT over TCP, and every HTTP and
    # WebSocket socket under daphne), sustained and in a burst; past it the server stops
    # reading from that socket until its budget is back (the client's sends then wait).
    "READ_RATE": 256 * 1024,
    "READ_BURST": 1024 * 1024,
    # Under daphne: HTTP and WebSocket sockets one address may hold open at once, and the
    # seconds an HTTP request (a WebSocket handshake included) has to arrive whole, from its
    # first byte; a socket past either is closed.
    "MAX_SOCKETS_PER_ADDRESS": 128,
    "HTTP_REQUEST_TIMEOUT": 20.0,
    # WebSocket pings and pongs a client may send per second, sustained and in a burst (each
    # costs the server a frame to parse and a pong to send); past it the socket is closed.
    "WS_PING_RATE": 2.0,
    "WS_PING_BURST": 10,
    # Under daphne: lines of its access log (one per HTTP request and WebSocket event) per
    # second, sustained and in a burst, for the whole process; past it lines are counted
    # and the count written with the next line. 0 turns the bound off.
    "ACCESS_LOG_RATE": 50.0,
    "ACCESS_LOG_BURST": 500,
}


CONNECT_AUTH_POLICIES = ("ignore", "optional", "required")


def check() -> None:
    """Raise ImproperlyConfigured for a gate setting no connection could work with."""
    policy = get("CONNECT_AUTH")
    if policy not in CONNECT_AUTH_POLICIES:
        raise ImproperlyConfigured(
            f"MQANT['CONNECT_AUTH'] must be one of {CONNECT_AUTH_POLICIES}, got {policy!r}"
        )
    paths = get("WS_PATHS")
    if paths is not None and (
        isinstance(paths, str) or not all(isinstance(p, str) and p.startswith("/") for p in paths)
    ):
        raise ImproperlyConfigured(
            f"MQANT['WS_PATHS'] must be None or a list of paths starting with '/', got {paths!r}"
        )


def get(name: str) -> Any:
    """The value of ``settings.MQANT[name]``, or its default; KeyError for an unknown name."""
    overrides: dict[str, Any] = getattr(settings, "MQANT", {})
    if name in overrides:
        return overrides[name]
    return DEFAULTS[name]
