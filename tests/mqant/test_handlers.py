"""``@handler``: handlers declared on the method, their payload checked against a dataclass
or a TypedDict before they run, ``login_required``, ordered versus concurrent calls."""

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired, TypedDict

import pytest
from channels.layers import get_channel_layer

from mqant import Module, NonEmpty, RemoteError, Session, call, handler, register_module, runtime
from mqant.apps import MqantConfig


@dataclass
class Point:
    x: int
    y: float = 0.0


@dataclass
class Order:
    item: Annotated[str, NonEmpty]
    count: int
    gift: bool = False
    note: str | None = None
    tags: list[str] = field(default_factory=list)
    where: Point | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Note(TypedDict):
    text: str
    to: NotRequired[list[str]]


def session(user_id: str = "") -> Session:
    return Session(
        ip="127.0.0.1", network="tcp", session_id="s1", server_id="g", channel="", user_id=user_id
    )


@register_module
class Declared(Module):
    module_type = "Declared"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.log: list[tuple[str, int]] = []
        self.runs = 0

    @handler("HD_Order")
    async def order(self, session: Session, msg: Order) -> dict[str, Any]:
        self.runs += 1
        return {"order": repr(msg)}

    @handler("HD_Note")
    def note(self, session: Session, msg: Note) -> list[Any]:
        """A plain function: in a worker thread, with the TypedDict's keys only."""
        return [threading.current_thread() is threading.main_thread(), msg]

    @handler("HD_Strict", message=Point, invalid="x cannot be nil")
    async def strict(self, session: Session, msg: dict[str, Any]) -> str:
        return repr(msg)

    @handler("HD_Mine", login_required=True)
    async def mine(self, session: Session, msg: Point) -> str:
        self.runs += 1
        return f"{session.user_id}: {msg.x}"

    @handler
    async def echo(self, *args: Any) -> list[Any]:
        return list(args)

    @handler("serial", ordered=True)
    async def serial(self, n: int, delay: float) -> int:
        return await self._step(n, delay)

    @handler("concurrent")
    async def concurrent(self, n: int, delay: float) -> int:
        return await self._step(n, delay)

    async def _step(self, n: int, delay: float) -> int:
        self.log.append(("start", n))
        await asyncio.sleep(delay)
        self.log.append(("end", n))
        return n


@pytest.fixture
async def declared(settings: Any) -> Any:
    settings.MQANT = {**settings.MQANT, "CONFIG": None, "MODULES": ["Declared"]}
    app = (await runtime.start()).app
    yield next(module for module, _ in app.modules if isinstance(module, Declared))
    await runtime.stop()
    await get_channel_layer().flush()


async def test_a_payload_that_fits_is_converted_and_unknown_fields_ignored(declared):
    body = {"item": "tea", "count": 2, "where": {"x": 1, "y": 2}, "unknown": [1], "note": None}
    result = await call("Declared", "HD_Order", session(), body)
    assert result == {
        "order": "Order(item='tea', count=2, gift=False, note=None, tags=[], "
        "where=Point(x=1, y=2.0), extra={})"
    }


TEA = {"item": "tea", "count": 1}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"raw", "msg: an object is required, got bytes"),
        (["tea"], "msg: an object is required, got a list"),
        ({"count": 1}, "msg.item: a non-empty string is required"),
        ({"item": "", "count": 1}, "msg.item: a non-empty string is required, got an empty one"),
        ({"item": 5, "count": 1}, "msg.item: a non-empty string is required, got a number"),
        ({"item": "tea"}, "msg.count: an integer is required"),
        ({"item": "tea", "count": "2"}, "msg.count: an integer is required, got a string"),
        ({"item": "tea", "count": True}, "msg.count: an integer is required, got a boolean"),
        ({"item": "tea", "count": 1.5}, "msg.count: an integer is required, got a number"),
        ({"item": "tea", "count": 1, "gift": 1}, "msg.gift: a boolean is required, got a number"),
        ({**TEA, "note": 3}, "msg.note: a string or null is required, got a number"),
        ({**TEA, "tags": ["a", None]}, "msg.tags[1]: a string is required, got null"),
        ({**TEA, "tags": "a"}, "msg.tags: a list is required, got a string"),
        ({**TEA, "where": {"y": 1}}, "msg.where.x: an integer is required"),
        ({**TEA, "where": {"x": 1, "y": "n"}}, "msg.where.y: a number is required, got a string"),
        ({**TEA, "extra": []}, "msg.extra: an object is required, got a list"),
    ],
)  # fmt: skip
async def test_a_payload_that_does_not_fit_is_refused_before_the_handler_runs(declared, body, text):
    with pytest.raises(RemoteError) as refused:
        await call("Declared", "HD_Order", session(), body)
    assert str(refused.value) == text
    assert declared.runs == 0


@pytest.mark.django_db(transaction=True)  # a plain handler's thread closes old connections
async def test_a_typed_dict_keeps_its_declared_keys_and_a_plain_handler_runs_in_a_thread(declared):
    body = {"text": "hi", "to": ["ann"], "more": 1}
    in_thread, msg = await call("Declared", "HD_Note", session(), body)
    assert (in_thread, msg) == (False, {"text": "hi", "to": ["ann"]})
    with pytest.raises(RemoteError, match=r"^msg\.to\[0\]: a string is required, got a number$"):
        await call("Declared", "HD_Note", session(), {"text": "hi", "to": [1]})


async def test_message_and_invalid_arguments(declared):
    assert await call("Declared", "HD_Strict", session(), {"x": 1}) == "Point(x=1, y=0.0)"
    with pytest.raises(RemoteError, match=r"^x cannot be nil$"):
        await call("Declared", "HD_Strict", session(), {"x": "1"})


async def test_login_required_answers_a_guest_not_logined_after_the_payload_check(declared):
    with pytest.raises(RemoteError, match=r"^msg\.x: an integer is required$"):
        await call("Declared", "HD_Mine", session(), {})
    with pytest.raises(RemoteError, match=r"^Not Logined$"):
        await call("Declared", "HD_Mine", session(), {"x": 1})
    assert declared.runs == 0
    assert await call("Declared", "HD_Mine", session("ann"), {"x": 1}) == "ann: 1"


async def test_a_bare_handler_takes_the_method_name(declared):
    assert await call("Declared", "echo", 1, "a") == [1, "a"]
    assert "_step" not in declared.handlers


async def test_ordered_calls_run_one_at_a_time_and_the_others_concurrently(declared):
    await asyncio.gather(call("Declared", "serial", 1, 0.05), call("Declared", "serial", 2, 0))
    assert [entry for entry in declared.log] == [("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    declared.log.clear()
    await asyncio.gather(
        call("Declared", "concurrent", 1, 0.05), call("Declared", "concurrent", 2, 0)
    )
    assert declared.log[:2] == [("start", 1), ("start", 2)]


def test_a_name_declared_twice_is_refused():
    class Twice(Module):
        module_type = "Twice"

        @handler("HD_A")
        async def a(self, session: Session, msg: Any) -> None: ...

        @handler("HD_A")
        async def b(self, session: Session, msg: Any) -> None: ...

    with pytest.raises(ValueError, match=r"declares handler 'HD_A' twice: a and b"):
        Twice()


async def test_a_declared_name_registered_again_is_refused():
    class Again(Module):
        module_type = "Again"

        async def on_init(self, settings: dict[str, Any]) -> None:
            await super().on_init(settings)
            self.register_go("HD_A", self.a)

        @handler("HD_A")
        async def a(self, session: Session, msg: Any) -> None: ...

    with pytest.raises(ValueError, match=r"registers handler 'HD_A' twice"):
        await Again().on_init({})


def test_a_method_is_one_handler():
    with pytest.raises(TypeError, match=r"declared a handler twice"):

        @handler("HD_B")
        @handler("HD_A")
        async def both(self: Any, session: Session, msg: Any) -> None: ...


def test_a_subclass_overrides_the_method_and_keeps_the_route():
    class Base(Module):
        @handler("HD_A", ordered=True)
        async def a(self, session: Session, msg: Point) -> str:
            return "base"

    class Child(Base):
        async def a(self, session: Session, msg: Point) -> str:
            return "child"

    spec = Child().handlers["HD_A"]
    assert not spec.concurrent
    assert spec.fn.__qualname__.endswith("Child.a")


@pytest.mark.parametrize(
    "message",
    [int, dict[str, Any]],
)
def test_message_takes_a_dataclass_or_a_typed_dict(message):
    with pytest.raises(TypeError, match=r"message= takes a dataclass or a TypedDict"):
        handler("HD_A", message=message)


def test_a_field_type_that_cannot_be_checked_is_refused_when_the_module_is_made():
    @dataclass
    class Loose:
        either: list[int] | dict[str, int]

    class Bad(Module):
        @handler("HD_A")
        async def a(self, session: Session, msg: Loose) -> None: ...

    with pytest.raises(TypeError, match=r"A union of a message is of str, int, float, bool"):
        Bad()


def test_the_demo_modules_are_found_in_their_apps_modules_py():
    from django.apps import apps

    from mqant.registry import module_classes

    found = module_classes()
    for label, module_type in [("chat", "Chat"), ("login", "Login"), ("helloworld", "HelloWorld")]:
        config = apps.get_app_config(label)
        assert "ready" not in vars(type(config))  # nothing of their own imports them
        assert found[module_type].__module__ == f"{config.name}.modules"
    assert "ready" in vars(MqantConfig)
