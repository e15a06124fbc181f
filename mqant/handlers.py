"""``@handler``: a module's methods declared as its handlers, with their message type and
guard, and collected by the Module when it is constructed.

::

    @dataclass
    class Join:
        roomName: str

    @register_module
    class Chat(Module):
        module_type = "Chat"

        @handler("HD_JoinChat", login_required=True)
        async def join_chat(self, session: Session, msg: Join) -> dict[str, Any]: ...

Before the method runs, the payload is checked against the message type (``mqant.messages``)
and then, with ``login_required``, the session must be bound to a user: a malformed request
is refused before anyone asks who sent it. Either refusal answers the call with an error
text, as ``HandlerError`` does.
"""

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from mqant.errors import HandlerError
from mqant.messages import Invalid, compile_message, is_message_type
from mqant.session import Session

NOT_LOGINED = "Not Logined"  # mqant's answer to a guest calling a handler that needs a user
_ROUTE = "__mqant_handler__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Route:
    """How a decorated method is served: see ``handler``."""

    name: str | None
    ordered: bool = False
    login_required: bool = False
    message: Any = None
    invalid: str | None = None


@overload
def handler(fn: F, /) -> F: ...


@overload
def handler(
    name: str | None = None,
    /,
    *,
    ordered: bool = False,
    login_required: bool = False,
    message: Any = None,
    invalid: str | None = None,
) -> Callable[[F], F]: ...


def handler(
    name: Any = None,
    /,
    *,
    ordered: bool = False,
    login_required: bool = False,
    message: Any = None,
    invalid: str | None = None,
) -> Any:
    """Declare a Module method as the handler ``name`` (bare ``@handler``: the method's name).

    - ``ordered``: its calls run one at a time, in arrival order (``register``); by default
      each runs on its own, concurrently (``register_go``).
    - ``message``: the dataclass or TypedDict the payload must fit; by default the
      annotation of the method's ``msg`` parameter, when it is one of those.
    - ``invalid``: the error text of a payload that does not fit; by default one that says
      which field and why (``msg.roomName: a string is required, got a number``).
    - ``login_required``: a guest session is answered ``Not Logined``.
    """
    if callable(name):
        return _mark(name, Route(None))
    if message is not None and not is_message_type(message):
        raise TypeError(f"message= takes a dataclass or a TypedDict, not {message!r}")
    route = Route(name, ordered, login_required, message, invalid)
    return lambda fn: _mark(fn, route)


def _mark(fn: F, route: Route) -> F:
    if hasattr(fn, _ROUTE):
        raise TypeError(f"{fn.__qualname__} is declared a handler twice")
    setattr(fn, _ROUTE, route)
    return fn


def declared(cls: type) -> dict[str, tuple[str, Route]]:
    """Handler name -> (attribute, route) of every ``@handler`` method of ``cls`` and its
    bases; a subclass's method of the same attribute name replaces its base's.

    Raises ValueError when two methods declare the same handler name.
    """
    found: dict[str, tuple[str, Route]] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            route = getattr(value, _ROUTE, None)
            if not isinstance(route, Route):
                continue
            found = {n: (a, r) for n, (a, r) in found.items() if a != attr}
            name = route.name or attr
            if name in found:
                raise ValueError(
                    f"{cls.__qualname__} declares handler {name!r} twice: "
                    f"{found[name][0]} and {attr}"
                )
            found[name] = (attr, route)
    return found


Prepare = Callable[[tuple[Any, ...]], tuple[Any, ...]]


def prepare_for(fn: Callable[..., Any], route: Route) -> Prepare | None:
    """What runs before ``fn`` (a bound method) on each call: its route's message check and
    login guard, turning the call's arguments into the handler's (``msg`` checked, converted
    to its type) or raising HandlerError; None when the route asks for neither. The module's
    server runs it (mqant.server), so a handler costs no wrapper of its own."""
    at, message = _message_parameter(fn, route)
    check = compile_message(message) if message is not None else None
    if check is None and not route.login_required:
        return None
    invalid, login_required = route.invalid, route.login_required

    def logged_in(session: Any) -> bool:
        return isinstance(session, Session) and not session.is_guest()

    def prepare(args: tuple[Any, ...]) -> tuple[Any, ...]:
        if check is not None and len(args) > at:
            try:
                args = (*args[:at], check(args[at]), *args[at + 1 :])
            except Invalid as err:
                raise HandlerError(invalid or err.text()) from None
        if login_required and (not args or not logged_in(args[0])):
            raise HandlerError(NOT_LOGINED)
        return args

    return prepare


def _message_parameter(fn: Callable[..., Any], route: Route) -> tuple[int, Any]:
    """The position of ``fn``'s ``msg`` parameter and the message type it must fit (None:
    any payload)."""
    positional = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if "msg" not in positional:
        if route.message is not None:
            raise TypeError(f"{fn.__qualname__} has no msg parameter for message=")
        return 0, None
    at = positional.index("msg")
    if route.message is not None:
        return at, route.message
    annotation = _annotation(fn, "msg")
    return at, annotation if is_message_type(annotation) else None


def _annotation(fn: Callable[..., Any], name: str) -> Any:
    """The annotation of parameter ``name``, a string one resolved in ``fn``'s module; the
    other annotations are left alone (they may name what exists only for type checkers)."""
    func: Any = inspect.unwrap(getattr(fn, "__func__", fn))
    raw = func.__annotations__.get(name)
    if raw is None:
        return None
    holder = types.SimpleNamespace(__annotations__={name: raw}, __globals__=func.__globals__)
    return typing.get_type_hints(holder, include_extras=True)[name]


def routes(module: Any) -> Iterator[tuple[str, Callable[..., Any], bool, Prepare | None]]:
    """(name, function, ordered, prepare) of each declared handler of ``module``, ready to
    register."""
    for name, (attr, route) in declared(type(module)).items():
        fn = getattr(module, attr)
        yield name, fn, route.ordered, prepare_for(fn, route)
