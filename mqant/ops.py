"""Session operations and gate events as typed values, and their channel-layer form.

A module changes a live session through one of the operations below (``Bind``, ``Set``...),
addressed to the connection that owns the session; the framework sends the gate events
(``Deliver``, ``Fanout``, ``SessionRequest``, ``CloseConnection``, ``Batch``) to gate
processes. This module is the one place that turns them into the dicts the channel layer carries
(mqant.types) and back.
"""

from dataclasses import dataclass
from typing import Any

from mqant.types import (
    GateBatchMessage,
    GateCloseMessage,
    GateFanoutMessage,
    GateSendMessage,
    SessionOpFields,
    SessionOpMessage,
)


@dataclass(frozen=True, slots=True)
class Bind:
    """Bind the session to ``user_id`` (a session bound to another user ends first)."""

    user_id: str


@dataclass(frozen=True, slots=True)
class Unbind:
    """Make the session a guest again, under a new session id."""


@dataclass(frozen=True, slots=True)
class Logout:
    """Forget the user's stored session, then make the session a guest."""


@dataclass(frozen=True, slots=True)
class Set:
    """Set one setting."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class SetBatch:
    """Set several settings at once."""

    settings: dict[str, str]


@dataclass(frozen=True, slots=True)
class Remove:
    """Remove one setting."""

    key: str


@dataclass(frozen=True, slots=True)
class Push:
    """Replace the settings."""

    settings: dict[str, str]


@dataclass(frozen=True, slots=True)
class Get:
    """Change nothing: the answer is the session's state."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send a PUBLISH to the session's client."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the session's connection."""


@dataclass(frozen=True, slots=True)
class HandOver:
    """A connection of another gate process took the client id of this persistent MQTT
    session (gate.persist), whose queue goes on there: the session ends here, as on a
    disconnect, and its connection, if any, is closed as taken over."""


@dataclass(frozen=True, slots=True)
class GroupAdd:
    """Make the connection a member of channel-layer group ``group``; ``name`` is the
    group's own name, for the gates' census ("" for an unnamed group)."""

    group: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class GroupDiscard:
    """Remove the connection from channel-layer group ``group``."""

    group: str


SessionOp = (
    Bind
    | Unbind
    | Logout
    | Set
    | SetBatch
    | Remove
    | Push
    | Get
    | Send
    | Close
    | GroupAdd
    | GroupDiscard
    | HandOver
)


def encode_op(op: SessionOp) -> SessionOpFields:
    """``op`` as the channel layer carries it."""
    match op:
        case Bind(user_id):
            return {"op": "bind", "user_id": user_id}
        case Unbind():
            return {"op": "unbind"}
        case Logout():
            return {"op": "logout"}
        case Set(key, value):
            return {"op": "set", "key": key, "value": value}
        case SetBatch(settings):
            return {"op": "set_batch", "settings": settings}
        case Remove(key):
            return {"op": "remove", "key": key}
        case Push(settings):
            return {"op": "push", "settings": settings}
        case Get():
            return {"op": "get"}
        case Send(topic, payload):
            return {"op": "send", "key": topic, "payload": payload}
        case Close():
            return {"op": "close"}
        case HandOver():
            return {"op": "hand_over"}
        case GroupAdd(group, name):
            return {"op": "group_add", "group": group, "name": name}
        case GroupDiscard(group):
            return {"op": "group_discard", "group": group}


def decode_op(fields: SessionOpFields) -> SessionOp:
    """The operation ``fields`` encode; raises KeyError or ValueError for a malformed one."""
    match fields["op"]:
        case "bind":
            return Bind(fields["user_id"])
        case "unbind":
            return Unbind()
        case "logout":
            return Logout()
        case "set":
            return Set(fields["key"], fields["value"])
        case "set_batch":
            return SetBatch(fields["settings"])
        case "remove":
            return Remove(fields["key"])
        case "push":
            return Push(fields["settings"])
        case "get":
            return Get()
        case "send":
            return Send(fields["key"], fields["payload"])
        case "close":
            return Close()
        case "hand_over":
            return HandOver()
        case "group_add":
            return GroupAdd(fields["group"], fields.get("name", ""))
        case "group_discard":
            return GroupDiscard(fields["group"])
    raise ValueError(f"Expected a session operation, got {fields['op']!r}")


# Gate events


@dataclass(frozen=True, slots=True)
class Deliver:
    """``gate.send``: a PUBLISH for connection ``to`` (its key in its gate process)."""

    to: str
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Fanout:
    """``gate.fanout``: a PUBLISH for every member of ``group`` in the receiving gate process,
    but the connection whose channel is ``exclude`` (when not "")."""

    group: str
    topic: str
    payload: bytes
    exclude: str = ""


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """``gate.session``: ``op`` for connection ``to``, answered to ``reply_to`` (unless "")."""

    to: str
    id: str
    reply_to: str
    op: SessionOp


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """``gate.close``: close connection ``to``."""

    to: str


# A PUBLISH's topic and payload.
Packet = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class Batch:
    """``gate.batch``: the PUBLISHes for several connections of the receiving gate process,
    by key; each connection writes its own at once."""

    items: tuple[tuple[str, tuple[Packet, ...]], ...]


GateEvent = Deliver | Fanout | SessionRequest | CloseConnection | Batch


def encode_deliver(event: Deliver) -> GateSendMessage:
    return {"type": "gate.send", "to": event.to, "topic": event.topic, "payload": event.payload}


def encode_fanout(event: Fanout) -> GateFanoutMessage:
    """The ``gate.fanout`` message; ``exclude`` travels only when set, so that a message
    without it is the one a gate that knows no ``exclude`` reads."""
    message: GateFanoutMessage = {
        "type": "gate.fanout",
        "group": event.group,
        "topic": event.topic,
        "payload": event.payload,
    }
    if event.exclude:
        message["exclude"] = event.exclude
    return message


def encode_request(event: SessionRequest) -> SessionOpMessage:
    return {
        "type": "gate.session",
        "to": event.to,
        "id": event.id,
        "reply_to": event.reply_to,
        "op": encode_op(event.op),
    }


def encode_batch(event: Batch) -> GateBatchMessage:
    items = [
        [key, [[topic, payload] for topic, payload in packets]] for key, packets in event.items
    ]
    return {"type": "gate.batch", "items": items}


def _decode_batch(items: Any) -> Batch:
    """A ``gate.batch``'s items, each checked (a malformed one raises TypeError)."""
    decoded = []
    for key, packets in items:
        checked = []
        for topic, payload in packets:
            if not isinstance(topic, str) or not isinstance(payload, bytes):
                raise TypeError("a batch's packet is a topic and bytes")
            checked.append((topic, payload))
        if not isinstance(key, str):
            raise TypeError("a batch's connection key is a string")
        decoded.append((key, tuple(checked)))
    return Batch(tuple(decoded))


def encode_close(event: CloseConnection) -> GateCloseMessage:
    return {"type": "gate.close", "to": event.to}


def decode_event(message: dict[str, Any]) -> GateEvent | None:
    """The gate event ``message`` carries; None for another type (or a malformed one)."""
    try:
        match message.get("type"):
            case "gate.send":
                return Deliver(message["to"], message["topic"], message["payload"])
            case "gate.fanout":
                group, topic, payload = message["group"], message["topic"], message["payload"]
                return Fanout(group, topic, payload, message.get("exclude", ""))
            case "gate.session":
                op = decode_op(message["op"])
                return SessionRequest(message["to"], message["id"], message["reply_to"], op)
            case "gate.close":
                return CloseConnection(message["to"])
            case "gate.batch":
                return _decode_batch(message["items"])
    except (KeyError, TypeError, ValueError):
        return None
    return None
