"""The channel-layer vocabulary: every event the framework and the gate exchange.

Event types are dotted (``gate.send``) and name the consumer method that handles them
(``gate_send``), as Channels does.
"""

from typing import Any, Literal, NotRequired, TypedDict


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


class CallMessage(TypedDict):
    """An RPC request to a module node's channel."""

    type: Literal["mqant.call"]
    id: str
    fn: str
    args: list[Any]
    reply_to: str
    deadline: float  # wall-clock seconds (time.time()) after which the caller has given up


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
    topic: str
    payload: bytes


SessionOpName = Literal["bind", "unbind", "set", "push", "get", "close"]


class SessionOp(TypedDict):
    """A change to a live session, applied by the connection that owns it."""

    op: SessionOpName
    user_id: NotRequired[str]
    key: NotRequired[str]
    value: NotRequired[str]
    settings: NotRequired[dict[str, str]]


class SessionOpMessage(TypedDict):
    """A SessionOp sent to the owning connection's channel; it answers with a ReplyMessage."""

    type: Literal["gate.session"]
    id: str
    reply_to: str
    op: SessionOp


class GateCloseMessage(TypedDict):
    """Close the connection that receives it."""

    type: Literal["gate.close"]
