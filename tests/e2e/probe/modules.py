"""SessionProbe: Session operations as client-callable handlers, for end-to-end tests."""

import asyncio
from typing import Any

from mqant import Module, Session, register_module


@register_module
class SessionProbe(Module):
    module_type = "SessionProbe"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.seen_events: list[tuple[str, str]] = []
        for name in (
            "Set", "SetBatch", "SetPush", "Remove", "Push", "Update", "Get", "Load", "Send",
            "SendNR", "SendBatch", "Broadcast", "IsConnect", "Close", "Unbind", "IsGuest",
            "Clone", "Whoami", "Events", "Sleep",
        ):  # fmt: skip
            self.register_go(f"HD_{name}", getattr(self, name.lower()))

    async def on_session_opened(self, session: Session) -> None:
        self.seen_events.append(("opened", session.session_id))

    async def on_session_closed(self, session: Session) -> None:
        self.seen_events.append(("closed", session.session_id))

    async def set(self, session: Session, msg: dict[str, Any]) -> dict[str, str]:
        await session.set(msg["key"], msg["value"])
        return session.settings

    async def setbatch(self, session: Session, msg: dict[str, Any]) -> dict[str, str]:
        await session.set_batch(msg["settings"])
        return session.settings

    async def setpush(self, session: Session, msg: dict[str, Any]) -> dict[str, str]:
        await session.set_push(msg["key"], msg["value"])
        return session.settings

    async def remove(self, session: Session, msg: dict[str, Any]) -> dict[str, str]:
        await session.remove(msg["key"])
        return session.settings

    async def push(self, session: Session, msg: dict[str, Any]) -> dict[str, str]:
        session.settings = dict(msg["settings"])
        await session.push()
        return session.settings

    async def update(self, session: Session, msg: dict[str, Any]) -> dict[str, str]:
        """A stale copy, refreshed from the live session."""
        session.settings = {}
        await session.update()
        return session.settings

    async def get(self, session: Session, msg: dict[str, Any]) -> str | None:
        return session.get(msg["key"])

    async def load(self, session: Session, msg: dict[str, Any]) -> list[Any]:
        return list(session.load(msg["key"]))

    async def send(self, session: Session, msg: dict[str, Any]) -> str:
        await session.send(msg["topic"], msg["body"])
        return "sent"

    async def sendnr(self, session: Session, msg: dict[str, Any]) -> str:
        await session.send_nr(msg["topic"], msg["body"])
        return "sent"

    async def sendbatch(self, session: Session, msg: dict[str, Any]) -> int:
        return await session.send_batch(msg["sessions"], msg["topic"], msg["body"])

    async def broadcast(self, session: Session, msg: dict[str, Any]) -> str:
        await session.broadcast(msg["topic"], msg["body"])
        return "sent"

    async def isconnect(self, session: Session, msg: dict[str, Any]) -> bool:
        return await session.is_connect(msg["user"])

    async def close(self, session: Session, msg: dict[str, Any]) -> str:
        await session.close()
        return "closed"

    async def unbind(self, session: Session, msg: dict[str, Any]) -> str:
        await session.unbind()
        return session.user_id

    async def isguest(self, session: Session, msg: dict[str, Any]) -> bool:
        return session.is_guest()

    async def clone(self, session: Session, msg: dict[str, Any]) -> bool:
        copy = session.clone()
        copy.settings["only-in-the-clone"] = "1"
        return "only-in-the-clone" not in session.settings and copy.user_id == session.user_id

    async def whoami(self, session: Session, msg: Any) -> dict[str, Any]:
        state = session.state()
        return {k: v for k, v in state.items() if k != "channel"}

    async def events(self, session: Session, msg: Any) -> list[list[str]]:
        return [list(event) for event in self.seen_events]

    async def sleep(self, session: Session, msg: Any) -> str:
        """A call that stays in flight ``{"seconds"}`` (at most 5) seconds, for stop tests."""
        seconds = msg.get("seconds", 1) if isinstance(msg, dict) else 1
        await asyncio.sleep(min(max(float(seconds), 0.0), 5.0))
        return "slept"
