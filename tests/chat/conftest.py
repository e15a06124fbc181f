"""Driving the Chat module in this process: a start with Chat settings of the test's own, and
users on fake connections (the gate's side of a session)."""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.core.cache import cache

from chat.modules import Chat
from gate import process
from mqant import Session, call, owners, runtime
from tests.api.fakes import FakeConnection
from tests.conftest import stop_runtime


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """The quotas count in the cache: every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


StartChat = Callable[..., Awaitable[Chat]]


@pytest.fixture
async def start_chat(settings: Any) -> AsyncIterator[StartChat]:
    """``await start_chat(HistorySize=5, ...)``: the modules of this process, Chat with those
    settings; returns the Chat module. Stopped after the test."""

    async def start(**chat_settings: Any) -> Chat:
        settings.MQANT = {
            **settings.MQANT,
            "CONFIG": None,
            "MODULES": ["Chat"],
            "MODULE_SETTINGS": {"Chat": chat_settings},
        }
        app = (await runtime.start(process.parts())).app
        return next(module for module, _ in app.modules if isinstance(module, Chat))

    yield start
    await stop_runtime()


class User:
    """A logged-in user on a fake connection of their own; ``say``, ``join`` and ``leave``
    return the handler's result or raise its error."""

    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.session = connection.session

    async def join(self, room: str) -> Any:
        return await call("Chat", "HD_JoinChat", self.session, {"roomName": room})

    async def say(self, room: str, content: str, target: str = "*") -> Any:
        body = {"roomName": room, "content": content, "target": target}
        return await call("Chat", "HD_Say", self.session, body)

    async def leave(self, room: str) -> Any:
        return await call("Chat", "HD_LeaveChat", self.session, {"roomName": room})

    def pushed(self, topic: str) -> list[bytes]:
        return [payload for t, payload in self.connection.pushes if t == topic]


@pytest.fixture
async def user() -> AsyncIterator[Callable[..., Awaitable[User]]]:
    """``await user("ann")`` (or ``user("ann", session_id="s2")`` for a second connection)."""
    opened: list[FakeConnection] = []

    async def open_user(user_id: str, session_id: str = "") -> User:
        channel = await get_channel_layer().new_channel()
        session = Session(
            ip="127.0.0.1",
            network="websocket",
            session_id=session_id or f"s-{user_id[:40]}-{len(opened)}",
            server_id="gate-test",
            channel=channel,
            user_id=user_id,
        )
        connection = FakeConnection(session)
        owners.attach(channel, connection)
        opened.append(connection)
        return User(connection)

    yield open_user
    for connection in opened:
        connection.close()
