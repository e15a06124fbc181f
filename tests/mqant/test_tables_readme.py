"""The README's game (its "readme:tables" block) runs as written: two users enter one table,
move, and each sees the other's dot in the frames' pushes."""

import asyncio
import json
import re
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from mqant import Module, Session, owners
from mqant.ops import SessionOp, Set
from mqant.tables import RoomModule
from mqant.types import SessionState

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_game() -> dict[str, Any]:
    """The block's names, its classes made but not registered (the test's modules stay out
    of the process's registry)."""
    found = re.search(r"<!-- readme:tables -->\n\s*```python\n(.*?)```", README, re.S)
    assert found, "README.md lacks its readme:tables block"
    code = textwrap.dedent(found.group(1)).replace("@register_module\n", "")
    names: dict[str, Any] = {"__name__": "readme_tables"}
    exec(compile(code, "README.md", "exec"), names)
    return names


class Connection:
    """A live connection of this process: applies ``set`` and records what it is sent."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pushes: list[tuple[str, Any]] = []

    async def apply_session_op(self, op: SessionOp) -> SessionState:
        if isinstance(op, Set):
            self.session.settings[op.key] = op.value
        return self.session.state()

    async def deliver(self, topic: str, payload: bytes) -> None:
        self.pushes.append((topic, json.loads(payload)))

    async def deliver_many(self, packets: Sequence[tuple[str, bytes]]) -> None:
        for topic, payload in packets:
            await self.deliver(topic, payload)


@pytest.fixture
def local() -> Iterator[None]:
    with override_settings(MQANT={"RPC_LOCAL_SHORTCUT": True}):
        yield


def user(name: str) -> Connection:
    session = Session(
        ip="127.0.0.1",
        network="tcp",
        session_id="s-" + name,
        server_id="gate",
        channel="gate.readme#" + name,
        user_id=name,
    )
    connection = Connection(session)
    owners.attach(session.channel, connection)
    return connection


async def test_the_readmes_game_plays(local: None) -> None:
    game = readme_game()
    module: Module = game["Dots"]()
    assert isinstance(module, RoomModule)
    module.node_id = "Dots@0000000000000001"
    await module.on_init({})
    ann, bob = user("ann"), user("bob")
    try:
        entered = await module.enter(ann.session.clone(), {})  # type: ignore[attr-defined]
        assert entered["seat"] == 0
        assert (await module.enter(bob.session.clone(), {}))["seat"] == 1  # type: ignore[attr-defined]
        assert entered["room"] == ann.session.settings["room"] == bob.session.settings["room"]
        move = game["Move"]
        await module.move(ann.session.clone(), move(3.0, 4.0))  # type: ignore[attr-defined]
        async with asyncio.timeout(3):
            while ("Dots/OnMove", {"ann": [3.0, 4.0], "bob": [0.0, 0.0]}) not in bob.pushes:
                await asyncio.sleep(0.02)
        assert ("Dots/OnJoin", {"player": "bob"}) in ann.pushes
        stranger = user("eve")
        with pytest.raises(Exception, match="Enter a table first"):
            await module.move(stranger.session.clone(), move(1.0, 1.0))  # type: ignore[attr-defined]
    finally:
        await module.on_destroy()
        for name in ("ann", "bob", "eve"):
            owners.detach("gate.readme#" + name)
