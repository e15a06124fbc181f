"""HelloWorld: the echo of mqant's examples, and the benchmark target."""

from typing import Any

from mqant import HandlerError, Module, Session, register_module


@register_module
class HelloWorld(Module):
    module_type = "HelloWorld"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.register_go("HD_Say", self.say)

    async def say(self, session: Session, msg: dict[str, Any] | bytes) -> str:
        """``{"say": "hi"}`` → ``"you say : hi"``."""
        if not isinstance(msg, dict) or "say" not in msg:
            raise HandlerError("say cannot be nil")
        return f"you say : {msg['say']}"
