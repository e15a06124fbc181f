"""HelloWorld: the echo of mqant's examples, and the benchmark target."""

from dataclasses import dataclass
from typing import Any

from mqant import Module, Session, handler, register_module


@dataclass
class Say:
    say: Any  # any JSON value is echoed, as mqant's example does


@register_module
class HelloWorld(Module):
    module_type = "HelloWorld"

    @handler("HD_Say", invalid="say cannot be nil")
    async def say(self, session: Session, msg: Say) -> str:
        """``{"say": "hi"}`` → ``"you say : hi"``."""
        return f"you say : {msg.say}"
