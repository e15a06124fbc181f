"""The framework's settings: ``settings.MQANT`` over these defaults."""

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Seconds a caller waits for an RPC reply (mqant: 10 s); a later reply is dropped.
    "RPC_TIMEOUT": 10.0,
    # Call a module hosted by this process directly instead of through the channel layer.
    # Same semantics either way; False forces every call through the layer.
    "RPC_LOCAL_SHORTCUT": True,
    # The deployment, in mqant's server.conf format: a path to such a file, or the same
    # structure as a dict. The MQANT_CONFIG environment variable (a path) wins over it; with
    # neither, every module runs in one process (see mqant.config).
    "CONFIG": None,
    # Without CONFIG, the built-in deployment: the module types it runs (None: every
    # registered one) and, per type, the settings handed to Module.on_init.
    "MODULES": None,
    "MODULE_SETTINGS": {},
    # Where live nodes are known: "BACKEND" is a NodeRegistry class, "CONFIG" its keyword
    # arguments. The default knows this process's nodes only, which is all there is with the
    # in-memory channel layer; mqant.redis.registry.RedisNodeRegistry shares them in Redis.
    "REGISTRY": {"BACKEND": "mqant.registry.NodeRegistry", "CONFIG": {}},
    # How a call to a module type picks one of its nodes: (module_type, nodes) -> node.
    "SELECTOR": "mqant.registry.random_selector",
    # Seconds a stopping process gives its calls in flight and its modules' on_destroy before
    # it gives up on them (mqant: 60).
    "SHUTDOWN_TIMEOUT": 60.0,
    # Session persistence, mqant's StorageHandler (mqant.storage): a dotted path, or
    # {"BACKEND": path, "CONFIG": {...}}; None turns it off.
    "STORAGE_HANDLER": {
        "BACKEND": "sessions_store.storage.DatabaseStorage",
        "CONFIG": {"ttl": 7 * 24 * 3600},
    },
    # Persistent MQTT sessions' queued pushes (mqant.queues): "BACKEND" a SessionQueues class,
    # "CONFIG" its keyword arguments. The default keeps them in this process's memory (one
    # gate process); mqant.redis.queues.RedisSessionQueues keeps them in Redis, for every gate.
    "SESSION_QUEUES": {"BACKEND": "mqant.queues.MemorySessionQueues", "CONFIG": {}},
    # Per persistent session, the pushes and the bytes (topics and payloads) queued: past
    # either, the oldest are dropped and counted (mqant_session_pushes_dropped_total).
    "SESSION_QUEUE_MAX_MESSAGES": 1000,
    "SESSION_QUEUE_MAX_BYTES": 1024 * 1024,
    # Persistent sessions stored at once, connected or not: a client that would start one more
    # is refused.
    "MAX_PERSISTENT_SESSIONS": 10000,
    # Seconds between two checks of the database by each process (mqant.dependencies): a hung
    # or refusing database is logged once, with how long it lasted; 0 turns the checks off.
    "DATABASE_PROBE": 2.0,
    # Seconds between two StorageHandler.heartbeat calls for one active session (mqant: 60).
    "STORAGE_HEARTBEAT": 60.0,
    # Who is connected where (mqant.storage.Presence), same forms; None turns it off.
    "PRESENCE": "sessions_store.presence.DatabasePresence",
    # Seconds between two heartbeats of a gate process, and seconds of silence after which
    # it is dead (at least three heartbeats): another gate ends its connections and modules
    # get on_session_closed, within GATE_DEAD_AFTER + GATE_HEARTBEAT of its death (about 5 s;
    # 10 s and three beats took 20-40 s). Each beat costs a gate 2 queries (3 every 15 s).
    "GATE_HEARTBEAT": 1.0,
    "GATE_DEAD_AFTER": 4.0,
    # A user who logs in while already connected: "keep" both connections, "kick" the
    # older ones, or "refuse" the new login.
    "SINGLE_SESSION": "keep",
    # Per client address, for every way in (REST, Login/HD_Login, CONNECT, the admin): login
    # attempts and accounts created, as [count, per seconds] (mqant.accounts.budgets).
    "LOGIN_RATE_PER_ADDRESS": [30, 60],
    "REGISTER_RATE_PER_ADDRESS": [10, 3600],
    # Threads that hash passwords, and hashes that may wait for one, in all and per client
    # address (served in turn); past that a login is refused at once ("The server is busy")
    # instead of waiting (mqant.accounts.hashing).
    "PASSWORD_HASH_THREADS": 2,
    "PASSWORD_HASH_QUEUE": 32,
    "PASSWORD_HASH_QUEUE_PER_ADDRESS": 4,
    # Answer /healthz and /readyz in the ASGI application, before Django (mqant.health).
    "HEALTH_ENDPOINTS": True,
    # Seconds the event loop may run late (mqant.looplag) before /healthz answers 503.
    "HEALTH_MAX_LOOP_LAG": 5.0,
    # The bearer token /metrics asks for (mqant.scrape); "" leaves /metrics to the project
    # on the HTTP port. runmodules --health answers /metrics with it, or freely without.
    "METRICS_TOKEN": "",
    # Bytes an HTTP request's body may hold (mqant.asgi.BodyLimit); a larger one is refused
    # (413) before Django spools it to disk.
    "MAX_HTTP_BODY": 4 * 1024 * 1024,
    # A dotted path to a function (session) -> bool that says who is a guest; None: a
    # session is a guest until it is bound to a user (mqant's rule).
    "GUEST_RULE": None,
    # OpenTelemetry tracing of client calls (mqant.tracing): True or False; None (the default)
    # follows the environment: on when OTEL_TRACES_EXPORTER names an exporter (not "none").
    "TRACING": None,
    # The exporter instead of OTEL_TRACES_EXPORTER's: a SpanExporter class as a dotted path,
    # or {"BACKEND": path, "CONFIG": {...}} (keyword arguments); setting it turns tracing on.
    "TRACING_EXPORTER": None,
    # Once a server process has started (mqant.runtime.freeze_start), move what it made at
    # start (Django, the modules) out of the garbage collector's sight (gc.freeze), and back
    # at stop: a full collection then walks only what came since (13-30 ms instead of 21-96
    # with 100 game tables of 8, whose 22 ms frames due meanwhile are that late).
    "GC_FREEZE": True,
}


# settings.MQANT, read once: every call reads several settings (a lazy settings object costs
# an attribute lookup of its own each time). Forgotten when a test overrides MQANT.
_overrides: dict[str, Any] | None = None


def get(name: str) -> Any:
    """The value of ``settings.MQANT[name]``, or its default; KeyError for an unknown name."""
    global _overrides
    overrides = _overrides
    if overrides is None:
        overrides = _overrides = getattr(settings, "MQANT", {})
    if name in overrides:
        return overrides[name]
    return DEFAULTS[name]


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    global _overrides
    if setting == "MQANT":
        _overrides = None
