"""Typed messages: the payload a handler receives, checked against a dataclass or a TypedDict
before the handler runs.

A message type is compiled once, when its module is constructed, into a function that checks
a payload and converts it: a dataclass is built from the object, a TypedDict is a new dict of
its declared keys. Fields may be ``str``, ``int``, ``float`` (an integer is taken too),
``bool``, ``list``/``list[X]``, ``dict``/``dict[str, X]``, ``Any``, ``X | None``, a union of
those scalars, another dataclass or TypedDict, and ``Annotated[X, NonEmpty]`` for a string,
list or object that must not be empty. Unknown fields are ignored, as JSON APIs usually do.

Each value of the payload is looked at once, against one type: the cost is linear in the
payload, and nesting is bounded (``MAX_DEPTH``) even for a type that contains itself.
"""

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from typing import Any, NotRequired, Required, cast

MAX_DEPTH = 32  # objects and lists in one another, for a type that contains itself

Convert = Callable[[Any, int], Any]  # (value, depth) -> the value the handler receives


class Invalid(Exception):
    """A payload that does not fit its type; ``text()`` says where and why."""

    def __init__(self, expected: str, got: str = "", *, reason: str = "") -> None:
        super().__init__(expected)
        self.expected, self.got, self.reason = expected, got, reason
        self.path: list[str] = []  # innermost first, filled on the way out

    def text(self) -> str:
        where = "msg" + "".join(reversed(self.path))
        if self.reason:
            return f"{where}: {self.reason}"
        got = f", got {self.got}" if self.got else ""
        return f"{where}: {self.expected} is required{got}"


class _NonEmpty:
    def __repr__(self) -> str:
        return "NonEmpty"


NonEmpty = _NonEmpty()  # Annotated[str, NonEmpty]: "" (or [], {}) does not fit


def is_message_type(tp: Any) -> bool:
    """Whether ``tp`` is a dataclass or a TypedDict, which a handler's ``msg`` may declare."""
    return typing.is_typeddict(tp) or (isinstance(tp, type) and dataclasses.is_dataclass(tp))


def compile_message(tp: Any) -> Callable[[Any], Any]:
    """The checker of message type ``tp``: payload -> the handler's ``msg``; raises Invalid.

    Raises TypeError when ``tp`` holds a type this module cannot check.
    """
    if not is_message_type(tp):
        raise TypeError(f"A message type is a dataclass or a TypedDict, not {tp!r}")
    compiler = _Compiler()
    compiler.compile(tp)
    # Its own Convert, not its entry in _done (one call more); depth defaults to 0.
    return cast(Callable[[Any], Any], compiler.objects[tp])


def describe(value: Any) -> str:
    """What came, in JSON's words."""
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    names |= {list: "a list", tuple: "a list", dict: "an object", bytes: "bytes"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


_SCALARS: dict[Any, tuple[str, Callable[[Any], bool]]] = {
    str: ("a string", lambda v: type(v) is str),
    bool: ("a boolean", lambda v: type(v) is bool),
    int: ("an integer", lambda v: type(v) is int),
    float: ("a number", lambda v: type(v) in (int, float)),
    type(None): ("null", lambda v: v is None),
}


def _scalar(tp: Any) -> Convert:
    expected, fits = _SCALARS[tp]
    as_float = tp is float

    def convert(value: Any, depth: int) -> Any:
        if not fits(value):
            raise Invalid(expected, describe(value))
        return float(value) if as_float else value

    return convert


class _Compiler:
    """Turns a type into a Convert; a type that contains itself refers to its own entry."""

    def __init__(self) -> None:
        self._done: dict[Any, Convert] = {}
        self.objects: dict[Any, Convert] = {}  # each message type's own Convert, once compiled

    def compile(self, tp: Any) -> Convert:
        if is_message_type(tp):
            if tp not in self._done:
                slot: list[Convert] = []
                self._done[tp] = lambda value, depth: slot[0](value, depth)
                slot.append(self._object(tp))
                self.objects[tp] = slot[0]
            return self._done[tp]
        return self._value(tp)

    def _value(self, tp: Any) -> Convert:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any or tp is object:
            return _any
        if tp is list:
            return self._list(Any)
        if tp is dict:
            return self._dict(Any)
        if tp in _SCALARS:
            return _scalar(tp)
        if origin is typing.Annotated:
            return self._annotated(args[0], args[1:])
        if origin is list:
            return self._list(args[0])
        if origin is dict:
            if args[0] is not str:
                raise TypeError(f"An object's keys are strings: {tp!r}")
            return self._dict(args[1])
        if origin in (typing.Union, types.UnionType):
            return self._union(tp, args)
        if is_message_type(tp):
            return self.compile(tp)
        raise TypeError(f"A message field cannot be checked as {tp!r}")

    def _annotated(self, tp: Any, extras: tuple[Any, ...]) -> Convert:
        inner = self._value(tp)
        if NonEmpty not in extras:
            return inner
        expected = _expected(typing.Annotated[tp, NonEmpty])

        def convert(value: Any, depth: int) -> Any:
            try:
                value = inner(value, depth)
            except Invalid as err:
                if err.path:
                    raise
                raise Invalid(expected, err.got) from None
            if not value:
                raise Invalid(expected, "an empty one")
            return value

        return convert

    def _union(self, tp: Any, args: tuple[Any, ...]) -> Convert:
        none = type(None)
        others = [a for a in args if a is not none]
        if len(others) == 1:  # X | None
            inner, described = self._value(others[0]), _expected(others[0])

            def optional(value: Any, depth: int) -> Any:
                if value is None:
                    return None
                try:
                    return inner(value, depth)
                except Invalid as err:
                    if err.path:
                        raise
                    raise Invalid(f"{described} or null", err.got) from None

            return optional
        if not all(a in _SCALARS for a in args):
            raise TypeError(f"A union of a message is of str, int, float, bool, None: {tp!r}")
        checks = [_SCALARS[a] for a in args]
        expected = " or ".join(name for name, _ in checks)

        def one_of(value: Any, depth: int) -> Any:
            if not any(fits(value) for _, fits in checks):
                raise Invalid(expected, describe(value))
            return value

        return one_of

    def _list(self, item_type: Any) -> Convert:
        item = self._value(item_type)

        def convert(value: Any, depth: int) -> list[Any]:
            if not isinstance(value, list | tuple):
                raise Invalid("a list", describe(value))
            _enter(depth)
            out = []
            for index, element in enumerate(value):
                try:
                    out.append(item(element, depth + 1))
                except Invalid as err:
                    err.path.append(f"[{index}]")
                    raise
            return out

        return convert

    def _dict(self, value_type: Any) -> Convert:
        item = self._value(value_type)

        def convert(value: Any, depth: int) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise Invalid("an object", describe(value))
            _enter(depth)
            out = {}
            for key, element in value.items():
                try:
                    out[key] = item(element, depth + 1)
                except Invalid as err:
                    err.path.append(f"[{json.dumps(str(key)[:40])}]")
                    raise
            return out

        return convert

    def _object(self, tp: Any) -> Convert:
        fields = _fields(tp)
        compiled = [
            (name, required, self._value(ftype), _expected(ftype))
            for name, required, ftype in fields
        ]
        build: Callable[..., Any] = dict if typing.is_typeddict(tp) else tp

        def convert(value: Any, depth: int = 0) -> Any:
            if not isinstance(value, dict):
                raise Invalid("an object", describe(value))
            if depth >= MAX_DEPTH:
                _enter(depth)
            out = {}
            for name, required, field_convert, expected in compiled:
                try:
                    if name in value:
                        # A field of any type is taken as it is, without a call.
                        element = value[name]
                        out[name] = (
                            element if field_convert is _any else field_convert(element, depth + 1)
                        )
                    elif required:
                        raise Invalid(expected)
                except Invalid as err:
                    err.path.append(f".{name}")
                    raise
            return build(**out)

        return convert


def _any(value: Any, depth: int) -> Any:
    """The Convert of a field of any type: the value as it is."""
    return value


def _enter(depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise Invalid("", reason=f"nested more than {MAX_DEPTH} deep")


def _expected(tp: Any) -> str:
    """How a value of ``tp`` is asked for: "a string", "an object"..."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner, *extras = typing.get_args(tp)
        described = _expected(inner)
        return f"a non-empty {described.split(' ', 1)[1]}" if NonEmpty in extras else described
    if tp in _SCALARS:
        return _SCALARS[tp][0]
    if origin is list or tp is list:
        return "a list"
    if tp is Any or tp is object:
        return "a value"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(tp))
    return "an object"


def _fields(tp: Any) -> list[tuple[str, bool, Any]]:
    """(name, required, type) of each field a payload may carry."""
    hints = typing.get_type_hints(tp, include_extras=True)
    if dataclasses.is_dataclass(tp):
        missing = dataclasses.MISSING
        return [
            (f.name, f.default is missing and f.default_factory is missing, hints[f.name])
            for f in dataclasses.fields(tp)
            if f.init
        ]
    out = []
    for name, hint in hints.items():
        while typing.get_origin(hint) in (Required, NotRequired):
            hint = typing.get_args(hint)[0]
        out.append((name, name in tp.__required_keys__, hint))
    return out
