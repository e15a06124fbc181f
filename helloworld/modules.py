"""HelloWorld: the echo of mqant's examples, and the benchmark target.

Its one handler checks its payload by hand, as mqant's example does, so that the load tool
measures the same work from one version to the next; a module of one's own would declare a
typed message instead (docs/modules.md).
"""

from typing import Any

from mqant import HandlerError, Module, Session, handler, register_module


@register_module
class HelloWorld(Module):
    module_type = "HelloWorld"

    @handler("HD_Say")
    async def say(self, session: Session, msg: dict[str, Any] | bytes) -> str:
        """``{"say": "hi"}`` → ``"you say : hi"``."""
        if not isinstance(msg, dict) or "say" not in msg:
            raise HandlerError("say cannot be nil")
        return f"you say : {msg['say']}"
