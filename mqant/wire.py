"""RPC arguments and results as they cross the channel layer.

The layer carries what msgpack carries (None, bool, int, float, str, bytes, list, dict); a
Session, wherever it sits in a value, travels as its state under a marker key.
"""

from typing import Any

from mqant.session import Session
from mqant.types import ReplyMessage

_SESSION = "__mqant_session__"
# Values that cross as they are: most of what an argument holds, checked before anything else.
_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})


def encode_value(value: Any) -> Any:
    """``value`` with every Session in it replaced by its marked state (tuples become lists,
    as msgpack would make them)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Session):
        return {_SESSION: value.state()}
    if isinstance(value, list | tuple):
        return [encode_value(item) for item in value]
    if isinstance(value, dict):
        return {key: encode_value(item) for key, item in value.items()}
    return value


def decode_value(value: Any) -> Any:
    """The inverse of ``encode_value``."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dict):
        if len(value) == 1 and _SESSION in value:
            return Session.from_state(value[_SESSION])
        return {key: decode_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    return value


def encode_args(args: tuple[Any, ...]) -> list[Any]:
    return [encode_value(arg) for arg in args]


def decode_args(args: list[Any]) -> tuple[Any, ...]:
    return tuple(decode_value(arg) for arg in args)


def empty_reply(call_id: str) -> ReplyMessage:
    """The reply to call ``call_id``, to be filled with its result or its error."""
    return {"type": "mqant.reply", "id": call_id, "result": None, "error": "", "kind": ""}
