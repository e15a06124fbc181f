"""A module for the tracing and log tests (test_tracing.py, test_log_context.py): registered
when imported, so that the runtime they start hosts it."""

import logging
from typing import Any

from mqant import Module, Session, call, register_module


@register_module
class Traced(Module):
    """A serial handler that calls another module, one that fails, one that logs."""

    module_type = "Traced"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.register("HD_Relay", self.relay)
        self.register_go("HD_Fail", self.fail)
        self.register_go("HD_Log", self.log)

    async def relay(self, session: Session, msg: dict[str, Any]) -> Any:
        return await call("HelloWorld", "HD_Say", session, {"say": msg["say"]})

    async def fail(self, session: Session, msg: dict[str, Any]) -> None:
        raise KeyError("internals")

    async def log(self, session: Session, msg: dict[str, Any]) -> str:
        logging.getLogger("thirdparty.library").warning("a line from a handler")
        return "logged"
