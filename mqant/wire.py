"""RPC arguments and results as they cross the channel layer.

The layer carries what msgpack carries (None, bool, int, float, str, bytes, list, dict); a
Session travels as its state under a marker key.
"""

from typing import Any

from mqant.session import Session

_SESSION = "__mqant_session__"


def encode_value(value: Any) -> Any:
    if isinstance(value, Session):
        return {_SESSION: value.state()}
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and _SESSION in value:
        return Session.from_state(value[_SESSION])
    return value


def encode_args(args: tuple[Any, ...]) -> list[Any]:
    return [encode_value(arg) for arg in args]


def decode_args(args: list[Any]) -> tuple[Any, ...]:
    return tuple(decode_value(arg) for arg in args)
