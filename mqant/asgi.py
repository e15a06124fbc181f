"""An ASGI wrapper that starts and stops the modules this process hosts.

Servers with ASGI lifespan (uvicorn) start them at startup and stop them at shutdown.
daphne has no lifespan: the modules start with the first connection or request instead.
"""

from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable

from mqant import app as mqant_app

ASGIApp = Any


class MqantApplication:
    """Wraps the project's ASGI application; everything but lifespan passes through."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(
        self, scope: dict[str, Any], receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await mqant_app.ensure_started()
        await self.inner(scope, receive, send)

    async def _lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await mqant_app.ensure_started()
                except Exception as err:
                    await send({"type": "lifespan.startup.failed", "message": str(err)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await mqant_app.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
