"""The channel-layer vocabulary: every event the framework and the gate exchange.

Event types are dotted (``gate.send``) and name the consumer method that handles them
(``gate_send``), as Channels does.
"""

from collections.abc import Callable
from typing import Any, Literal, NotRequired, Protocol, TypedDict


class SessionState(TypedDict):
    """A session as it travels between processes."""

    ip: str
    network: str
    user_id: str
    session_id: str
    server_id: str
    settings: dict[str, str]
    channel: str
    topic: NotRequired[str]
    trace_id: NotRequired[str]
    span_id: NotRequired[str]
    user_properties: NotRequired[list[list[str]]]  # a call's MQTT 5 user properties


class CallMessage(TypedDict):
    """An RPC request to a module node's channel."""

    type: Literal["mqant.call"]
    id: str
    fn: str
    args: list[Any]
    reply_to: str
    deadline: float  # wall-clock seconds (time.time()) after which the caller has given up
    # W3C trace context of the caller's RPC span, when tracing is on there (mqant.tracing)
    traceparent: NotRequired[str]


class ReplyMessage(TypedDict):
    """The answer to a CallMessage or a SessionOpMessage, sent to the caller's reply channel."""

    type: Literal["mqant.reply"]
    id: str
    result: Any
    error: str  # "" when the call succeeded
    kind: str  # an RPCError kind, telling the caller which exception to raise


class GateSendMessage(TypedDict):
    """Deliver a PUBLISH to one connection (or, through a group, to each member)."""

    type: Literal["gate.send"]
    to: str  # the connection's key in its gate process (mqant.owners)
    topic: str
    payload: bytes


class GateBatchMessage(TypedDict):
    """PUBLISHes for several connections of one gate process, each connection's written at
    once (a table's frame: mqant.tables): ``[[key, [[topic, payload], ...]], ...]``."""

    type: Literal["gate.batch"]
    items: list[list[Any]]


SessionOpName = Literal[
    "bind",
    "unbind",
    "logout",
    "set",
    "set_batch",
    "remove",
    "push",
    "get",
    "send",
    "close",
    "group_add",
    "group_discard",
    "hand_over",
]


class SessionOpFields(TypedDict):
    """A change to a live session as the channel layer carries it (mqant.ops decodes it)."""

    op: SessionOpName
    user_id: NotRequired[str]
    key: NotRequired[str]
    value: NotRequired[str]
    settings: NotRequired[dict[str, str]]
    group: NotRequired[str]  # a channel-layer group name (mqant.groups.group_name)
    name: NotRequired[str]  # "group_add": the group's own name, for the gates' census
    payload: NotRequired[bytes]  # "send": the PUBLISH payload, "key" its topic


class SessionOpMessage(TypedDict):
    """A session operation sent to the owning connection's channel; it answers with a ReplyMessage
    to ``reply_to``, unless that is empty."""

    type: Literal["gate.session"]
    to: str  # the connection's key in its gate process (mqant.owners)
    id: str
    reply_to: str
    op: SessionOpFields


class GateFanoutMessage(TypedDict):
    """A PUBLISH for every member of a group, sent once to each gate process that has
    members; the process hands it to its own member connections."""

    type: Literal["gate.fanout"]
    group: str
    topic: str
    payload: bytes
    exclude: NotRequired[str]  # the channel of a member connection that skips it


class GateCloseMessage(TypedDict):
    """Close the connection that receives it."""

    type: Literal["gate.close"]
    to: str


class ListeningLayer(Protocol):
    """A channel layer that hands a channel's messages to a callback as they are read,
    instead of queueing them for ``receive`` (mqant.redis.layer's extension). mqant's
    consumers that only dispatch use it when the configured layer has it."""

    async def listen(self, channel: str, on_message: Callable[[dict[str, Any]], None]) -> None:
        """Call ``on_message`` with each message on ``channel``, in order."""

    async def unlisten(self, channel: str) -> None:
        """Stop calling, and stop receiving ``channel``."""


def listening(layer: Any) -> ListeningLayer | None:
    """``layer`` if its class offers ListeningLayer, else None. The class is asked, not the
    instance: channels-redis's layers answer any attribute through ``__getattr__``."""
    cls = type(layer)
    if callable(getattr(cls, "listen", None)) and callable(getattr(cls, "unlisten", None)):
        listener: ListeningLayer = layer
        return listener
    return None
